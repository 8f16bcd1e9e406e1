package vcs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckoutRevisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	cases := []struct {
		name       string
		src        Source
		wantCommit string
		wantBranch string
		present    string // a file that must exist
		absent     string // a file that must not exist
	}{
		{"default branch", Source{}, f.c4, "main", "libs/sub/sub.txt", "feature.txt"},
		{"branch", Source{Branch: "feature"}, f.c3, "feature", "feature.txt", ""},
		{"origin/branch", Source{Branch: "origin/feature"}, f.c3, "feature", "feature.txt", ""},
		{"tag", Source{Tag: "v1.0", Branch: "feature"}, f.c1, "", "hello.py", "libs/sub/sub.txt"},
		{"commit wins", Source{Commit: f.c3, Tag: "v1.0", Branch: "main"}, f.c3, "", "feature.txt", ""},
		{"short commit", Source{Commit: f.c2[:8]}, f.c2, "", "libs/sub/sub.txt", "feature.txt"},
		{"no submodules", Source{Commit: f.c4, SkipSubmodules: true}, f.c4, "", "hello.py", "libs/sub/sub.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, log, _ := testOptions(t, cache)
			src := tc.src
			src.Repository = f.upstream
			dir := filepath.Join(t.TempDir(), "code")
			res, err := Checkout(testContext(t), o, src, dir)
			if err != nil {
				t.Fatalf("Checkout: %v\nlog:\n%s", err, log)
			}
			if res.Commit != tc.wantCommit || res.Branch != tc.wantBranch || res.Dir != dir {
				t.Errorf("result %+v, want commit %s branch %q", res, tc.wantCommit, tc.wantBranch)
			}
			if head := git(t, dir, "rev-parse", "HEAD"); head != tc.wantCommit {
				t.Errorf("HEAD %s, want %s", head, tc.wantCommit)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.present)); err != nil {
				t.Errorf("missing %s: %v", tc.present, err)
			}
			if tc.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.absent)); err == nil {
					t.Errorf("%s should not exist", tc.absent)
				}
			}
			if url := git(t, dir, "remote", "get-url", "origin"); url != f.upstream {
				t.Errorf("origin %q, want the repository URL %q", url, f.upstream)
			}
			if tc.wantBranch != "" {
				if b := git(t, dir, "rev-parse", "--abbrev-ref", "HEAD"); b != tc.wantBranch {
					t.Errorf("checked-out branch %q, want %q", b, tc.wantBranch)
				}
				if up := git(t, dir, "rev-parse", "--abbrev-ref", "@{upstream}"); up != "origin/"+tc.wantBranch {
					t.Errorf("upstream %q", up)
				}
			}
			if res.Duration <= 0 || !strings.Contains(log.String(), "repository ready") {
				t.Errorf("duration %v, log:\n%s", res.Duration, log)
			}
		})
	}
}

func TestCheckoutDiff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Make a realistic diff: edit a tracked file, add an intent-to-add file.
	work := filepath.Join(t.TempDir(), "work")
	git(t, filepath.Dir(work), "clone", "--quiet", f.upstream, work)
	writeFile(t, filepath.Join(work, "hello.py"), "print('v2 edited')\nprint('two')\nprint('three')\n")
	writeFile(t, filepath.Join(work, "pkg", "new.py"), "NEW = 1\n")
	git(t, work, "add", "-N", "pkg/new.py")
	diff := git(t, work, "diff", "HEAD")

	t.Run("applies", func(t *testing.T) {
		t.Parallel()
		o, log, _ := testOptions(t, t.TempDir())
		dir := filepath.Join(t.TempDir(), "code")
		res, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Commit: f.c4, Diff: diff}, dir)
		if err != nil {
			t.Fatalf("Checkout: %v\n%s", err, log)
		}
		if got := readFile(t, filepath.Join(dir, "hello.py")); !strings.HasPrefix(got, "print('v2 edited')") {
			t.Errorf("hello.py = %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "pkg", "new.py")); got != "NEW = 1\n" {
			t.Errorf("new.py = %q", got)
		}
		if res.Commit != f.c4 || !strings.Contains(log.String(), "applying uncommitted changes") {
			t.Errorf("commit %s, log:\n%s", res.Commit, log)
		}
	})
	t.Run("hand-edited counts", func(t *testing.T) {
		t.Parallel()
		broken := strings.Replace(diff, "@@ -1,3 +1,3 @@", "@@ -1,7 +1,9 @@", 1)
		if broken == diff {
			t.Fatalf("unexpected diff shape:\n%s", diff)
		}
		o, log, _ := testOptions(t, t.TempDir())
		dir := filepath.Join(t.TempDir(), "code")
		if _, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Commit: f.c4, Diff: broken}, dir); err != nil {
			t.Fatalf("Checkout: %v\n%s", err, log)
		}
		if got := readFile(t, filepath.Join(dir, "hello.py")); !strings.HasPrefix(got, "print('v2 edited')") {
			t.Errorf("hello.py = %q", got)
		}
		if !strings.Contains(log.String(), "retrying with") {
			t.Errorf("no fallback in log:\n%s", log)
		}
	})
	t.Run("does not apply", func(t *testing.T) {
		t.Parallel()
		bad := "diff --git a/hello.py b/hello.py\n--- a/hello.py\n+++ b/hello.py\n@@ -1 +1 @@\n-print('not there')\n+print('x')\n"
		o, _, _ := testOptions(t, t.TempDir())
		dir := filepath.Join(t.TempDir(), "code")
		_, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Diff: bad}, dir)
		e := asError(t, err)
		if e.Kind != KindDiff || !strings.HasPrefix(e.Reason, "uncommitted changes do not apply: ") ||
			!strings.Contains(e.Reason, "hello.py") {
			t.Errorf("error %q (kind %s)", e.Reason, e.Kind)
		}
		if !isEmptyOrAbsent(dir) {
			t.Errorf("%s left behind after a failure", dir)
		}
	})
}

func TestCheckoutNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	missing := "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		src  Source
		want string
	}{
		{Source{Commit: missing}, "commit " + missing + " not found in " + f.upstream + ": check script.version_num"},
		{Source{Branch: "nope"}, "branch nope not found in " + f.upstream + ": check script.branch"},
		{Source{Tag: "v9"}, "tag v9 not found in " + f.upstream + ": check script.tag"},
		{Source{Repository: filepath.Join(t.TempDir(), "absent")}, "could not clone"},
	}
	for i, tc := range cases {
		o, _, argv := testOptions(t, cache)
		if tc.src.Repository == "" {
			tc.src.Repository = f.upstream
		}
		dir := filepath.Join(t.TempDir(), "code")
		_, err := Checkout(testContext(t), o, tc.src, dir)
		e := asError(t, err)
		if !strings.Contains(e.Reason, tc.want) {
			t.Errorf("case %d: reason %q, want %q", i, e.Reason, tc.want)
		}
		if i < 3 && e.Kind != KindNotFound {
			t.Errorf("case %d: kind %s", i, e.Kind)
		}
		if !isEmptyOrAbsent(dir) {
			t.Errorf("case %d: %s left behind", i, dir)
		}
		if i == 0 {
			// The mirror was just cloned; the missing commit costs exactly one more fetch.
			if n := strings.Count(readFile(t, argv), " fetch --prune"); n != 1 {
				t.Errorf("%d fetches for a missing commit, want 1", n)
			}
		}
	}
}

func TestCacheHitSeesNewCommits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	o, log, _ := testOptions(t, cache)
	res, err := Checkout(testContext(t), o, Source{Repository: f.upstream}, filepath.Join(t.TempDir(), "a"))
	if err != nil || res.CacheHit || res.Commit != f.c4 {
		t.Fatalf("first checkout: %+v %v", res, err)
	}
	writeFile(t, filepath.Join(f.upstream, "later.txt"), "later\n")
	git(t, f.upstream, "add", ".")
	git(t, f.upstream, "commit", "--quiet", "-m", "c5")
	c5 := git(t, f.upstream, "rev-parse", "HEAD")
	res, err = Checkout(testContext(t), o, Source{Repository: f.upstream, Branch: "main"}, filepath.Join(t.TempDir(), "b"))
	if err != nil || !res.CacheHit || res.Commit != c5 {
		t.Fatalf("second checkout: %+v %v\n%s", res, err, log)
	}
	if !strings.Contains(log.String(), "(cached mirror hit)") {
		t.Errorf("log:\n%s", log)
	}
	entries, _ := os.ReadDir(cache)
	mirrors := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".git") {
			mirrors++
		}
	}
	if mirrors != 1 {
		t.Errorf("%d mirrors in the cache, want 1: %v", mirrors, entries)
	}
}

func TestConcurrentCheckouts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	o, log, argv := testOptions(t, cache)
	var wg sync.WaitGroup
	results := make([]*Result, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			results[i], errs[i] = Checkout(testContext(t), o, Source{Repository: f.upstream, Commit: f.c3},
				filepath.Join(t.TempDir(), "code"))
		})
	}
	wg.Wait()
	misses := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("checkout %d: %v\n%s", i, errs[i], log)
		}
		if results[i].Commit != f.c3 {
			t.Errorf("checkout %d at %s", i, results[i].Commit)
		}
		if !results[i].CacheHit {
			misses++
		}
	}
	if misses != 1 {
		t.Errorf("%d checkouts cloned the mirror, want exactly 1", misses)
	}
	if n := strings.Count(readFile(t, argv), "clone --mirror"); n != 1 {
		t.Errorf("%d mirror clones, want 1", n)
	}
}

func TestCheckoutWithoutCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o, _, _ := testOptions(t, "")
	dir := filepath.Join(t.TempDir(), "code")
	res, err := Checkout(testContext(t), o, Source{Repository: "file://" + f.upstream, Tag: "v1.0"}, dir)
	if err != nil || res.Commit != f.c1 || res.CacheHit {
		t.Fatalf("%+v %v", res, err)
	}
	// The copy must not depend on the (removed) temporary mirror.
	if out := git(t, dir, "fsck", "--connectivity-only"); strings.Contains(out, "missing") {
		t.Errorf("fsck: %s", out)
	}
}

func TestLockTimeoutFallsBackToPrivateMirror(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cache := t.TempDir()
	o, log, _ := testOptions(t, cache)
	u, _, _, _ := parseRepository(f.upstream)
	unlock, err := lockFile(testContext(t), filepath.Join(cache, u.mirrorName()+".lock"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	o.LockTimeout = 100 * time.Millisecond
	res, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Branch: "feature"}, filepath.Join(t.TempDir(), "code"))
	if err != nil || res.Commit != f.c3 || res.CacheHit {
		t.Fatalf("%+v %v\n%s", res, err, log)
	}
	if !strings.Contains(log.String(), "private temporary mirror") {
		t.Errorf("log:\n%s", log)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cache, ".mirror-*")); len(leftovers) != 0 {
		t.Errorf("temporary mirror left behind: %v", leftovers)
	}
}

func TestCheckoutCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o, _, _ := testOptions(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "code")
	if _, err := Checkout(ctx, o, Source{Repository: f.upstream}, dir); err == nil {
		t.Fatal("a cancelled checkout succeeded")
	}
	if !isEmptyOrAbsent(dir) {
		t.Errorf("%s left behind", dir)
	}
}
