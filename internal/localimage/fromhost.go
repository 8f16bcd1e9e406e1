package localimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// HostImage describes an image made of programs installed on this
// machine (from Debian's packages, say): the host's static busybox for a
// shell, the listed files and folders at the same paths, and the shared
// libraries their executables load, found with ldd. That is how the tests
// run a PostgreSQL or a HAProxy in a container without a registry.
type HostImage struct {
	// Paths are files or folders to copy, at the same path in the image.
	// Symbolic links are followed: the image holds regular files.
	Paths []string
	// Skip leaves out a file or folder below Paths (nil: none).
	Skip func(path string) bool
	// Files are extra files (path in the image → content), e.g. an
	// /etc/passwd with the user a server runs as.
	Files map[string]string
	// Dirs are empty folders to make, with their owner (uid) and mode.
	Dirs []Dir
}

// Dir is an empty folder of a HostImage.
type Dir struct {
	Path string
	UID  int
	Mode int64
}

// FromHost builds image ref from the host's files unless it exists.
func FromHost(ctx context.Context, ref string, spec HostImage) error {
	if Exists(ctx, ref) {
		return nil
	}
	var buf bytes.Buffer
	if err := writeHostImage(ctx, &buf, spec); err != nil {
		return fmt.Errorf("packing image %s: %w", ref, err)
	}
	return Import(ctx, ref, &buf)
}

func writeHostImage(ctx context.Context, w io.Writer, spec HostImage) error {
	bb := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if IsStatic(p) {
			bb = p
			break
		}
	}
	if bb == "" {
		return ErrNoBusybox
	}
	files := map[string]string{} // image path → host file to read
	var elves []string
	add := func(imagePath, hostPath string) {
		if _, ok := files[imagePath]; ok {
			return
		}
		files[imagePath] = hostPath
		if isELF(hostPath) {
			elves = append(elves, hostPath)
		}
	}
	for _, root := range spec.Paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if spec.Skip != nil && p != root && spec.Skip(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			st, err := os.Stat(p) // follows links
			if err != nil {
				return nil // a dangling link
			}
			if st.Mode().IsRegular() {
				add(p, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading %s: %w", root, err)
		}
	}
	// The libraries the executables and libraries load, and theirs.
	for i := 0; i < len(elves); i++ {
		libs, err := sharedLibs(ctx, elves[i])
		if err != nil {
			return err
		}
		for _, l := range libs {
			add(l, l)
		}
	}
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := filepath.Dir(p); d != "/" && d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(parents[i], "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return err
			}
		}
		return nil
	}
	writeFile := func(p string, mode int64, body []byte) error {
		if err := mkdirs(p); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"/bin", "/etc", "/root", "/proc", "/sys", "/dev", "/data"} {
		dirs[d] = true
		if err := tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	dirs["/tmp"] = true
	if err := tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for _, d := range spec.Dirs {
		if err := mkdirs(d.Path); err != nil {
			return err
		}
		dirs[d.Path] = true
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d.Path, "/") + "/", Mode: d.Mode, Uid: d.UID, Gid: d.UID, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	body, err := os.ReadFile(bb)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	if err := writeFile("/bin/busybox", 0o755, body); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777}); err != nil {
			return err
		}
	}
	extra := map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "/etc/group": "root:x:0:\n"}
	for p, c := range spec.Files {
		extra[p] = c
	}
	for _, p := range sortedKeys(extra) {
		if err := writeFile(p, 0o644, []byte(extra[p])); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(files) {
		if _, ok := extra[p]; ok || p == "/bin/busybox" {
			continue
		}
		host := files[p]
		st, err := os.Stat(host)
		if err != nil {
			return fmt.Errorf("reading %s: %w", host, err)
		}
		body, err := os.ReadFile(host)
		if err != nil {
			return fmt.Errorf("reading %s: %w", host, err)
		}
		if err := writeFile(p, int64(st.Mode().Perm()), body); err != nil {
			return err
		}
	}
	return tw.Close()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Type == elf.ET_EXEC || f.Type == elf.ET_DYN
}

// sharedLibs lists the paths of the libraries an ELF file loads, as ldd
// resolves them on this machine (the loader included).
func sharedLibs(ctx context.Context, path string) ([]string, error) {
	if IsStatic(path) {
		if f, err := elf.Open(path); err == nil {
			libs, _ := f.ImportedLibraries()
			f.Close()
			if len(libs) == 0 {
				return nil, nil
			}
		}
	}
	out, err := exec.CommandContext(ctx, "ldd", path).Output()
	if err != nil {
		// "not a dynamic executable", or a library ldd cannot load: it
		// brings nothing.
		return nil, nil
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
		// "lib => not found": an optional module's library this machine
		// lacks; what needs it fails in the container, saying so.
	}
	return libs, nil
}
