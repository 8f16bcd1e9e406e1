// Package localimage builds docker images on this machine without a
// registry, with `docker import`: a busybox image from the host's static
// busybox (Debian's busybox-static). The docker-mode tests and the
// benchmark command use it.
package localimage

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNoBusybox: the host has no static busybox to build the image from.
var ErrNoBusybox = errors.New("no static busybox on this machine (install Debian's busybox-static) to build the image from")

// busyboxApplets are the commands the image links to busybox: what the
// agent's set-up script and the tasks use.
var busyboxApplets = []string{"sh", "ash", "cat", "echo", "env", "sleep", "ps", "ls", "mkdir", "cp", "chmod", "rm",
	"grep", "sed", "id", "true", "false", "test", "[", "kill", "df", "hostname", "head", "tail", "wc", "mount", "date", "seq", "tr", "touch"}

// Exists reports whether the engine has the image.
func Exists(ctx context.Context, ref string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", ref).Run() == nil
}

// Busybox builds the busybox image ref unless it exists.
func Busybox(ctx context.Context, ref string) error {
	if Exists(ctx, ref) {
		return nil
	}
	bin := ""
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if IsStatic(p) {
			bin = p
			break
		}
	}
	if bin == "" {
		return ErrNoBusybox
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading busybox: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin", "etc", "root", "proc", "sys", "dev", "data"} {
		tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir})
	}
	tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir})
	file := func(name string, mode int64, body []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
	}
	file("bin/busybox", 0o755, data)
	for _, a := range busyboxApplets {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Typeflag: tar.TypeSymlink, Mode: 0o777})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\n"))
	if err := tw.Close(); err != nil {
		return fmt.Errorf("packing the busybox image: %w", err)
	}
	return Import(ctx, ref, &buf)
}

// Import makes image ref from a root file system tarball.
func Import(ctx context.Context, ref string, tarball interface{ Read([]byte) (int, error) }) error {
	cmd := exec.CommandContext(ctx, "docker", "import", "-", ref)
	cmd.Stdin = tarball
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import %s: %w: %s", ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// IsStatic reports whether path is a statically linked executable.
func IsStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// LockBuilds serialises image builds across processes (test binaries of
// several packages build the same images); call the returned func to
// release.
func LockBuilds() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "clearml-agent-test-images.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the image builds: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the image builds: %w", err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
