package pyenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
)

// Probing an interpreter runs it once (about 30 ms), and through a pyenv
// shim (a bash script that asks pyenv which Python to run) about 80 ms more,
// on every task. The answer only changes when the interpreter does, so it
// is kept on disk, in the agent user's private cache folder, under a key
// made of what decides it:
//   - the file the name resolved to (path, inode, size, modification time);
//   - for a pyenv shim, what pyenv decides with: PYENV_VERSION, PYENV_ROOT,
//     the global version file and the nearest .python-version file above
//     the working folder (paths and contents).
// A hit is used only while the interpreter it names (sys.executable) is
// the same file as when it was probed. Other scripts are not cached: what
// they decide with is unknown.

// shimRootRE finds the root a pyenv shim exports.
var shimRootRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`export PYENV_ROOT="([^"]+)"`) })

// interpCacheDir is where probes are kept; "" disables the cache.
var interpCacheDir = func() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "clearml-agent", "interpreters")
}

// cachedProbe is probe with the cache.
func cachedProbe(ctx context.Context, path string, env []string) (*interpreter, error) {
	dir := interpCacheDir()
	key, ok := probeKey(path, env)
	if dir == "" || !ok {
		return probe(ctx, path, env)
	}
	file := filepath.Join(dir, key+".json")
	if in := readProbe(file); in != nil {
		return in, nil
	}
	// One probe per key at a time: tasks that start together (services
	// mode, a daemon's first tasks) would otherwise each run it, and 50
	// probes through a pyenv shim at once took 8 s each on 2 cores. The
	// others wait for the lock, then read what the first one kept.
	if privateFile(dir, file+".lock") {
		if l, err := lockFile(ctx, file+".lock", true); err == nil {
			defer l.unlock()
			if in := readProbe(file); in != nil {
				return in, nil
			}
		}
	}
	in, err := probe(ctx, path, env)
	if err != nil {
		return nil, err
	}
	if st, ok := fileStamp(in.Path); ok {
		if b, err := json.Marshal(keptProbe{In: *in, Stat: st}); err == nil {
			writePrivate(dir, file, b)
		}
	}
	return in, nil
}

// privateFile makes sure file exists, readable by its owner alone, in dir.
func privateFile(dir, file string) bool {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	f, err := os.OpenFile(file, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	return f.Close() == nil
}

// keptProbe is a probe on disk, with the stamp of the interpreter it named.
type keptProbe struct {
	In   interpreter `json:"interpreter"`
	Stat string      `json:"stat"`
}

// readProbe returns the probe kept in file while its interpreter is the
// same file; nil otherwise.
func readProbe(file string) *interpreter {
	var kept keptProbe
	b, err := os.ReadFile(file)
	if err != nil || json.Unmarshal(b, &kept) != nil || kept.In.Path == "" {
		return nil
	}
	if st, ok := fileStamp(kept.In.Path); !ok || st != kept.Stat {
		return nil
	}
	return &kept.In
}

// probeKey is the cache key of resolving path; false when it cannot be
// cached.
func probeKey(path string, env []string) (string, bool) {
	stamp, ok := fileStamp(path)
	if !ok {
		return "", false
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", path, stamp)
	head := make([]byte, 512)
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	n, _ := f.Read(head)
	f.Close()
	head = head[:n]
	if bytes.HasPrefix(head, []byte("#!")) {
		if !bytes.Contains(head, []byte("libexec/pyenv")) {
			return "", false // a script whose choice we cannot follow
		}
		getenv := func(k string) string {
			for i := len(env) - 1; i >= 0; i-- {
				if v, ok := strings.CutPrefix(env[i], k+"="); ok {
					return v
				}
			}
			return ""
		}
		// The shim names its root itself; else pyenv's own default.
		root := getenv("PYENV_ROOT")
		if m := shimRootRE().FindSubmatch(head); m != nil {
			root = string(m[1])
		}
		if root == "" {
			if home := getenv("HOME"); home != "" {
				root = filepath.Join(home, ".pyenv")
			}
		}
		fmt.Fprintf(h, "version=%s\x00root=%s\x00", getenv("PYENV_VERSION"), root)
		if b, err := os.ReadFile(filepath.Join(root, "version")); err == nil {
			fmt.Fprintf(h, "global=%s\x00", b)
		}
		start := getenv("PYENV_DIR")
		if start == "" {
			start, _ = os.Getwd()
		}
		for d := start; d != ""; {
			if b, err := os.ReadFile(filepath.Join(d, ".python-version")); err == nil {
				fmt.Fprintf(h, "local=%s:%s\x00", d, b)
				break
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), true
}

// fileStamp identifies a file's current content cheaply: inode, size and
// modification time of what path resolves to.
func fileStamp(path string) (string, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d:%d:%d", ino, fi.Size(), fi.ModTime().UnixNano()), true
}

// writePrivate writes file atomically in dir (0700), readable by its owner
// only; a failure only costs the next probe.
func writePrivate(dir, file string, b []byte) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}
