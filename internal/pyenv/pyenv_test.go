package pyenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPrepareColdThenWarm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	start := time.Now()
	e1 := prepare(t, o, Request{Binary: "python3", Requirements: fiveReqs})
	cold := time.Since(start)
	if e1.CacheHit || f.log.pipRuns() != 1 {
		t.Fatalf("first Prepare: hit=%v pip runs=%d", e1.CacheHit, f.log.pipRuns())
	}
	if !strings.HasPrefix(e1.Dir, f.cache+string(filepath.Separator)) || e1.Python != venvPython(e1.Dir) {
		t.Fatalf("env %+v not in cache %s", e1, f.cache)
	}
	want := "beta-1.0+alpha-1.0 gamma-1.0 delta-1.0 epsilon-1.0"
	if got := runPy(t, e1, "import beta, gamma, delta, epsilon; print(beta.VALUE, gamma.VALUE, delta.VALUE, epsilon.VALUE)"); got != want {
		t.Fatalf("task python prints %q, want %q", got, want)
	}
	for _, pkg := range []string{"alpha==1.0", "beta==1.0", "epsilon==1.0"} {
		if !strings.Contains(e1.Frozen, pkg) {
			t.Errorf("freeze lacks %s:\n%s", pkg, e1.Frozen)
		}
	}
	t.Logf("cold: %s %v", cold, e1.Timings)
	// pip came from the seed venv: its script must run with this venv.
	if out, err := exec.Command(filepath.Join(e1.Dir, "bin", "pip"), "--version").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), e1.Dir) {
		t.Fatalf("bin/pip --version: %v %s", err, out)
	}
	e1.Release()

	// Same requirements, different spelling: a hit, no pip.
	same := "  alpha==1.0\n\n# pinned\nbeta==1.0\r\ngamma\ndelta\nepsilon   \n"
	start = time.Now()
	e2 := prepare(t, o, Request{Binary: "python3", Requirements: same})
	warm := time.Since(start)
	defer e2.Release()
	t.Logf("warm: %s %v", warm, e2.Timings)
	if !e2.CacheHit || e2.Key != e1.Key || e2.Dir != e1.Dir || e2.Frozen != e1.Frozen {
		t.Fatalf("second Prepare: hit=%v key %s vs %s dir %s vs %s", e2.CacheHit, e2.Key, e1.Key, e2.Dir, e1.Dir)
	}
	if n := f.log.pipRuns(); n != 1 {
		t.Fatalf("pip ran %d times, want 1", n)
	}
	// How fast a hit is belongs to the benchmarks (BenchmarkPrepareWarm,
	// agentbench first-line), not to a timed assertion here.
	if !strings.Contains(f.log.String(), "environment: cache hit (key "+e1.Key[:12]+")") {
		t.Errorf("log lacks the cache hit line:\n%s", f.log)
	}
	runPy(t, e2, "import beta")

	// Standalone mode may use the cached env: nothing to install.
	e3 := prepare(t, o, Request{Binary: "python3", Requirements: same, Standalone: true})
	if !e3.CacheHit || e3.Dir != e1.Dir || f.log.pipRuns() != 1 {
		t.Fatalf("standalone with a cached env: hit=%v dir=%s", e3.CacheHit, e3.Dir)
	}
	e3.Release()

	// Different requirements: a different key and entry.
	e4 := prepare(t, o, Request{Binary: "python3", Requirements: "alpha==2.0\n"})
	defer e4.Release()
	if e4.CacheHit || e4.Key == e1.Key || e4.Dir == e1.Dir || f.log.pipRuns() != 2 {
		t.Fatalf("different requirements: hit=%v key=%s", e4.CacheHit, e4.Key)
	}
	if got := runPy(t, e4, "import alpha; alpha.show()"); got != "alpha-2.0" {
		t.Fatalf("alpha prints %q", got)
	}
	if got := f.entries(); len(got) != 2 {
		t.Fatalf("cache entries %v, want 2", got)
	}
}

func TestPrepareUnsatisfiable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := Prepare(context.Background(), f.opts(), Request{Binary: "python3", Requirements: "gamma\nalpha==9.9\n"})
	if err == nil {
		t.Fatal("Prepare succeeded with alpha==9.9")
	}
	if !strings.Contains(err.Error(), "No matching distribution found for alpha==9.9") {
		t.Fatalf("error lacks pip's reason: %v", err)
	}
	t.Logf("error: %v", err)
	if got := f.entries(); len(got) != 0 {
		t.Fatalf("failed build left cache entries %v", got)
	}
}

func TestPrepareConcurrentSameKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	envs := make([]*Env, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range envs {
		wg.Go(func() {
			envs[i], errs[i] = Prepare(context.Background(), o, Request{Binary: "python3", Requirements: fiveReqs})
		})
	}
	wg.Wait()
	misses := 0
	for i, e := range envs {
		if errs[i] != nil {
			t.Fatalf("Prepare %d: %v", i, errs[i])
		}
		defer e.Release()
		if !e.CacheHit {
			misses++
		}
		if e.Dir != envs[0].Dir {
			t.Fatalf("dirs differ: %s %s", e.Dir, envs[0].Dir)
		}
		runPy(t, e, "import beta, epsilon")
	}
	if misses != 1 || f.log.pipRuns() != 1 {
		t.Fatalf("misses=%d pip runs=%d, want one build", misses, f.log.pipRuns())
	}
}

func TestEvictionKeepsLeased(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	o.MaxEntries = 2
	a := prepare(t, o, Request{Binary: "python3", Requirements: "gamma"})
	b := prepare(t, o, Request{Binary: "python3", Requirements: "delta"})
	b.Release()
	c := prepare(t, o, Request{Binary: "python3", Requirements: "epsilon"})
	c.Release()
	// a is the oldest but leased: b goes.
	if !exists(a.Dir) || exists(b.Dir) || !exists(c.Dir) {
		t.Fatalf("after 3 builds with max 2: a=%v b=%v c=%v", exists(a.Dir), exists(b.Dir), exists(c.Dir))
	}
	if len(f.entries()) != 2 || !strings.Contains(f.log.String(), "evicted cached environment "+b.Key[:keyDirLen]) {
		t.Fatalf("entries %v, log:\n%s", f.entries(), f.log)
	}
	runPy(t, a, "import gamma")

	// Once released, a is the least recently used.
	a.Release()
	o.MaxEntries = 1
	evict(o, 0, func(string, ...any) {})
	if exists(a.Dir) || !exists(c.Dir) {
		t.Fatalf("LRU: a=%v c=%v", exists(a.Dir), exists(c.Dir))
	}

	// Low free space evicts everything that is not leased.
	c2 := prepare(t, o, Request{Binary: "python3", Requirements: "epsilon"})
	if !c2.CacheHit {
		t.Fatal("epsilon env not cached")
	}
	o.MinFreeBytes = 1 << 62
	evict(o, 0, func(string, ...any) {})
	if !exists(c2.Dir) {
		t.Fatal("leased entry evicted for free space")
	}
	c2.Release()
	evict(o, 0, func(string, ...any) {})
	if exists(c2.Dir) || len(f.entries()) != 0 {
		t.Fatalf("free-space eviction left %v", f.entries())
	}
}

func TestPrepareSkipInstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	path, _, err := FindInterpreter("python3", "")
	if err != nil {
		t.Fatal(err)
	}
	e := prepare(t, f.opts(), Request{Binary: "python3", Requirements: "alpha==9.9", SkipInstall: true})
	defer e.Release()
	if e.Python != path || e.Dir != "" || e.CacheHit || f.log.pipRuns() != 0 || len(f.entries()) != 0 || e.Frozen != "" {
		t.Fatalf("skip install: %+v pip runs %d", e, f.log.pipRuns())
	}
}

func TestPrepareStandalone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	_, err := Prepare(context.Background(), o, Request{Binary: "python3", Requirements: "pip>=1\nalpha==1.0\n", Standalone: true})
	if err == nil || !strings.Contains(err.Error(), "alpha==1.0 (not installed)") || !strings.Contains(err.Error(), "standalone") {
		t.Fatalf("standalone with a missing package: %v", err)
	}
	_, err = Prepare(context.Background(), o, Request{Binary: "python3", Requirements: "pip<1\n", Standalone: true})
	if err == nil || !strings.Contains(err.Error(), "pip<1 (installed: ") {
		t.Fatalf("standalone with a version conflict: %v", err)
	}
	e := prepare(t, o, Request{Binary: "python3", Requirements: "pip>=1\nnothere; python_version < '3'\n", Standalone: true})
	defer e.Release()
	if e.Dir != "" || e.CacheHit || e.Python == "" {
		t.Fatalf("standalone satisfied: %+v", e)
	}
	if n := f.log.pipRuns(); n != 0 || len(f.entries()) != 0 {
		t.Fatalf("standalone ran pip install %d times, entries %v", n, f.entries())
	}
}

func TestPrepareHostileLine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	repo := t.TempDir()
	for line, want := range map[string]string{
		"$(touch CANARY2)": "Invalid requirement: '$(touch CANARY2)'",
		"; touch CANARY":   "Invalid marker: 'touch CANARY'",
	} {
		_, err := Prepare(context.Background(), f.opts(), Request{Binary: "python3", RepoDir: repo,
			Requirements: "gamma\n" + line + "\n"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("hostile line %q: %v", line, err)
		}
		t.Logf("%q: %v", line, err)
	}
	for _, dir := range []string{repo, "."} {
		if exists(filepath.Join(dir, "CANARY")) || exists(filepath.Join(dir, "CANARY2")) {
			t.Fatal("a requirement line ran through a shell")
		}
	}
	if len(f.entries()) != 0 {
		t.Fatalf("entries %v", f.entries())
	}
	_, err := Prepare(context.Background(), f.opts(), Request{Binary: "python3", Requirements: "gamma\n--prefix=/tmp/x\n"})
	if err == nil || !strings.Contains(err.Error(), "option --prefix is not allowed") || f.log.pipRuns() != 2 {
		t.Fatalf("disallowed option: %v (pip runs %d)", err, f.log.pipRuns())
	}
}

func TestPrepareUncachedRepoRequirements(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "wheels"), 0o755)
	writeWheel(t, filepath.Join(repo, "wheels"), wheel{name: "zeta", version: "0.1"})
	os.WriteFile(filepath.Join(repo, "requirements.txt"), []byte("./wheels/zeta-0.1-py3-none-any.whl\ngamma\n"), 0o644)
	e := prepare(t, f.opts(), Request{Binary: "python3", RepoDir: repo})
	if e.CacheHit || !strings.HasPrefix(e.Dir, f.work+string(filepath.Separator)) || len(f.entries()) != 0 {
		t.Fatalf("local wheel requirement: %+v, entries %v", e, f.entries())
	}
	if !strings.Contains(f.log.String(), "requirements are not cached") {
		t.Errorf("log does not say why:\n%s", f.log)
	}
	if got := runPy(t, e, "import zeta, gamma; print(zeta.VALUE, gamma.VALUE)"); got != "zeta-0.1 gamma-1.0" {
		t.Fatalf("got %q", got)
	}
	e.Release()
	e.Release()
	if exists(e.Dir) {
		t.Fatal("Release left the uncached venv")
	}
}

func TestPrepareCacheDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	o.CacheDir = "" // plain `python -m venv` with ensurepip, as upstream
	e := prepare(t, o, Request{Binary: "python3", Requirements: "gamma\n"})
	defer e.Release()
	if e.CacheHit || !strings.HasPrefix(e.Dir, f.work) || !strings.Contains(f.log.String(), "cache is DISABLED") {
		t.Fatalf("cache disabled: %+v", e)
	}
	runPy(t, e, "import gamma, pip")
}

func TestPrepareSystemSitePackages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	o.SystemSitePackages = true
	e := prepare(t, o, Request{Binary: "python3", Requirements: "gamma\n"})
	defer e.Release()
	cfg, err := os.ReadFile(filepath.Join(e.Dir, "pyvenv.cfg"))
	if err != nil || !strings.Contains(string(cfg), "include-system-site-packages = true") {
		t.Fatalf("pyvenv.cfg: %v\n%s", err, cfg)
	}
	code := "import sys, gamma; print(any(p.startswith(sys.base_prefix) and p.endswith('site-packages') for p in sys.path))"
	if got := runPy(t, e, code); got != "True" {
		t.Fatalf("base site-packages not on sys.path: %s", got)
	}
	o.SystemSitePackages = false
	e2 := prepare(t, o, Request{Binary: "python3", Requirements: "gamma\n"})
	defer e2.Release()
	if e2.CacheHit || e2.Key == e.Key {
		t.Fatal("system_site_packages does not change the cache key")
	}
	if got := runPy(t, e2, code); got != "False" {
		t.Fatalf("isolated venv sees base site-packages: %s", got)
	}
}

// BenchmarkPrepareWarm measures a cache hit: the interpreter probe, the
// lease and the metadata read. This is a task's environment start-up when
// its requirements did not change.
func BenchmarkPrepareWarm(b *testing.B) {
	f := newFixture(b)
	o := f.opts()
	r := Request{Binary: "python3", Requirements: fiveReqs}
	e, err := Prepare(context.Background(), o, r)
	if err != nil {
		b.Fatal(err)
	}
	e.Release()
	b.ResetTimer()
	for b.Loop() {
		e, err := Prepare(context.Background(), o, r)
		if err != nil || !e.CacheHit {
			b.Fatalf("hit=%v err=%v", e != nil && e.CacheHit, err)
		}
		e.Release()
	}
	b.StopTimer()
	if f.log.pipRuns() != 1 {
		b.Fatalf("pip ran %d times", f.log.pipRuns())
	}
}

// BenchmarkPrepareCold5 measures a cache miss with five requirements (one
// depending on another) from a local find-links folder: venv creation (pip
// seeded by hard links), pip install, pip freeze and publishing the entry.
// The one-time seed venv is made before the timer starts and reported as
// seed-s (with the one install that needed it).
func BenchmarkPrepareCold5(b *testing.B) {
	f := newFixture(b)
	o := f.opts()
	o.seedDir = filepath.Join(b.TempDir(), "seeds")
	t := time.Now()
	warmup := o
	warmup.CacheDir = filepath.Join(b.TempDir(), "warmup")
	e, err := Prepare(context.Background(), warmup, Request{Binary: "python3", Requirements: "gamma\n"}) // builds the seed
	if err != nil {
		b.Fatal(err)
	}
	e.Release()
	seed := time.Since(t)
	var venv, install time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		o.CacheDir = filepath.Join(f.cache, fmt.Sprint(i))
		e, err := Prepare(context.Background(), o, Request{Binary: "python3", Requirements: fiveReqs})
		if err != nil || e.CacheHit {
			b.Fatalf("hit=%v err=%v", e != nil && e.CacheHit, err)
		}
		venv += e.Timings["venv"]
		install += e.Timings["install"]
		e.Release()
	}
	b.StopTimer()
	b.ReportMetric(seed.Seconds(), "seed-s")
	b.ReportMetric(venv.Seconds()/float64(i), "venv-s/op")
	b.ReportMetric(install.Seconds()/float64(i), "install-s/op")
}
