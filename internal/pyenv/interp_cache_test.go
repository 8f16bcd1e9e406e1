package pyenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/testbin"
)

// A pyenv shim's answer is probed once and then read from the cache,
// until what pyenv decides with changes (PYENV_VERSION, a .python-version
// file); a script that is not a pyenv shim is probed every time.
func TestProbeCache(t *testing.T) {
	cache, script, runs := probeCacheFixture(t)
	shim := script("python3", pyenvShimMarker)
	local := t.TempDir()
	env := append(pythonEnv(nil), "PYENV_VERSION=", "PYENV_DIR="+local)
	find := func(path string, env []string) *interpreter {
		t.Helper()
		in, err := findInterpreter(context.Background(), path, "", env, func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	first := find(shim, env)
	if first.Path == shim || first.Version == "" {
		t.Fatalf("probe = %+v", first)
	}
	if again := find(shim, env); runs() != 1 || *again != *first {
		t.Fatalf("second find ran the shim (%d runs) or differs: %+v", runs(), again)
	}
	find(shim, append(env, "PYENV_VERSION=3.11"))
	if runs() != 2 {
		t.Fatalf("a new PYENV_VERSION did not probe again (%d runs)", runs())
	}
	if err := os.WriteFile(filepath.Join(local, ".python-version"), []byte("3.11\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	find(shim, env)
	if runs() != 3 {
		t.Fatalf("a .python-version did not probe again (%d runs)", runs())
	}
	other := script("python3.x", "some other wrapper")
	find(other, env)
	find(other, env)
	if runs() != 5 {
		t.Fatalf("an unknown wrapper was cached (%d runs, want 5)", runs())
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if fi, err := e.Info(); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("cache entry %s is readable by others: %v", e.Name(), fi.Mode())
		}
	}
}

// Tasks that start together share one probe: the others wait for it and
// read what it kept, rather than each running the shim.
func TestProbeCacheConcurrent(t *testing.T) {
	cache, script, runs := probeCacheFixture(t)
	shim := script("python3", pyenvShimMarker)
	env := append(pythonEnv(nil), "PYENV_VERSION=", "PYENV_DIR="+t.TempDir())
	const n = 8
	found := make([]*interpreter, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			in, err := findInterpreter(context.Background(), shim, "", env, func(string) {})
			if err != nil {
				t.Error(err)
				return
			}
			found[i] = in
		})
	}
	wg.Wait()
	if runs := runs(); runs != 1 {
		t.Fatalf("%d finds at once ran the shim %d times, want once", n, runs)
	}
	for i, in := range found {
		if in == nil || *in != *found[0] {
			t.Fatalf("find %d = %+v, want %+v", i, in, found[0])
		}
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if fi, err := e.Info(); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("cache entry %s is readable by others: %v", e.Name(), fi.Mode())
		}
	}
}

// pyenvShimMarker makes a script look like a pyenv shim to probeKey.
const pyenvShimMarker = `a pyenv shim: exec "$PYENV_ROOT/libexec/pyenv" exec "$program"`

// probeCacheFixture points the probe cache at a fresh folder and returns
// it, a maker of wrapper scripts around the real python3 (named name, with
// marker in a comment) and a count of the wrappers' runs.
func probeCacheFixture(t *testing.T) (cache string, script func(name, marker string) string, runs func() int) {
	t.Helper()
	real, _, err := FindInterpreter("python3", "")
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	cache = t.TempDir()
	old := interpCacheDir
	interpCacheDir = func() string { return cache }
	t.Cleanup(func() { interpCacheDir = old })
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	script = func(name, marker string) string {
		p := filepath.Join(dir, name)
		body := "#!/bin/sh\n# " + marker + "\necho run >> " + count + "\nexec " + real + " \"$@\"\n"
		testbin.WriteScript(t, p, body)
		return p
	}
	runs = func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "run")
	}
	return cache, script, runs
}
