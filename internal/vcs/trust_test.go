package vcs

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A mirror that something other than the agent changed (a hook, an
// executable configuration key, an alternate object store) is never used:
// it is cloned again, and what was planted never runs. The mirror the
// agent makes has hooks off in its own configuration too.
func TestChangedMirrorIsClonedAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	plants := []struct {
		name  string
		plant func(mirror string)
	}{
		{"hook", func(m string) {
			writeFile(t, filepath.Join(m, "hooks", "reference-transaction"), "#!/bin/sh\necho hook >> "+marker+"\n")
			os.Chmod(filepath.Join(m, "hooks", "reference-transaction"), 0o755)
		}},
		{"configuration", func(m string) {
			f, _ := os.OpenFile(filepath.Join(m, "config"), os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("[remote \"origin\"]\n\tuploadpack = sh -c 'echo uploadpack >> " + marker + "; exec git-upload-pack \"$@\"' x\n")
			f.Close()
		}},
		{"alternates", func(m string) {
			writeFile(t, filepath.Join(m, "objects", "info", "alternates"), t.TempDir()+"\n")
		}},
	}
	for i, p := range plants {
		o, log, _ := testOptions(t, cache)
		dest := filepath.Join(t.TempDir(), "co")
		if _, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Branch: "main"}, dest); err != nil {
			t.Fatalf("%s: checkout: %v", p.name, err)
		}
		mirrors, _ := filepath.Glob(filepath.Join(cache, "*.git"))
		if len(mirrors) != 1 {
			t.Fatalf("mirrors: %v", mirrors)
		}
		if i == 0 {
			if got := git(t, mirrors[0], "config", "--get", "core.hooksPath"); got != os.DevNull {
				t.Errorf("the mirror's core.hooksPath = %q, want %s", got, os.DevNull)
			}
		}
		p.plant(mirrors[0])
		// The repository moves on, so that a fetch would update refs.
		writeFile(t, filepath.Join(f.upstream, "moved.txt"), p.name)
		git(t, f.upstream, "add", ".")
		git(t, f.upstream, "commit", "--quiet", "-m", "moved "+p.name)
		o, log, _ = testOptions(t, cache)
		dest = filepath.Join(t.TempDir(), "co")
		if _, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Branch: "main"}, dest); err != nil {
			t.Fatalf("%s: checkout after the change: %v", p.name, err)
		}
		if !strings.Contains(log.String(), "changed outside the agent") {
			t.Errorf("%s: the changed mirror was used:\n%s", p.name, log)
		}
		if got := readFile(t, filepath.Join(dest, "moved.txt")); got != p.name {
			t.Errorf("%s: checkout has %q", p.name, got)
		}
		if b, err := os.ReadFile(marker); err == nil {
			t.Fatalf("%s: what was planted in the mirror ran: %q", p.name, b)
		}
	}
}

// treeList lists a folder's entries with their modes and, for files, a
// sum of their contents. Times are left out: git "freshens" an object it
// finds in an alternate store by touching its time, which a read-only
// mount refuses harmlessly and which writes nothing.
func treeList(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := rel + " " + info.Mode().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return out
}

// diffLines says which lines are only in a and which only in b.
func diffLines(a, b []string) string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}

// With a read-only cache (a container's view of the host's mirror) the
// mirror is used as it is and never written: a revision it has is checked
// out from it, one it lacks is fetched into a private copy. Prefetch
// (the host's part) brings the mirror up to date.
func TestReadOnlyCacheAndPrefetch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	o, _, _ := testOptions(t, cache)
	dir, err := Prefetch(testContext(t), o, Source{Repository: f.upstream, Branch: "main"})
	if err != nil || !isMirror(dir) || filepath.Dir(dir) != cache {
		t.Fatalf("Prefetch = %q, %v", dir, err)
	}
	before := treeList(t, cache)
	ro, log, _ := testOptions(t, cache)
	ro.ReadOnlyCache = true
	dest := filepath.Join(t.TempDir(), "co")
	res, err := Checkout(testContext(t), ro, Source{Repository: f.upstream, Branch: "main"}, dest)
	if err != nil || res.Commit != f.c4 || !res.CacheHit {
		t.Fatalf("read-only checkout = %+v, %v\n%s", res, err, log)
	}
	// A commit the mirror lacks.
	writeFile(t, filepath.Join(f.upstream, "later.txt"), "later\n")
	git(t, f.upstream, "add", ".")
	git(t, f.upstream, "commit", "--quiet", "-m", "later")
	later := git(t, f.upstream, "rev-parse", "HEAD")
	dest = filepath.Join(t.TempDir(), "co")
	if res, err = Checkout(testContext(t), ro, Source{Repository: f.upstream, Commit: later}, dest); err != nil || res.Commit != later {
		t.Fatalf("read-only checkout of a new commit = %+v, %v\n%s", res, err, log)
	}
	if diff := diffLines(before, treeList(t, cache)); diff != "" {
		t.Fatalf("a read-only checkout wrote into the cache:\n%s", diff)
	}
	// The host's prefetch brings it in.
	if _, err := Prefetch(testContext(t), o, Source{Repository: f.upstream, Commit: later}); err != nil {
		t.Fatal(err)
	}
	if got := git(t, dir, "rev-parse", "--verify", later+"^{commit}"); got != later {
		t.Fatalf("after Prefetch the mirror lacks %s", later)
	}
}
