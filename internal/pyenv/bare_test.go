package pyenv

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
)

// TestPrepareNoRequirementsWithoutPip: on an empty cache, a task with
// nothing to install gets a venv without pip and no seed is built
// (ensurepip never runs); a later task with requirements builds the seed
// then and still works, and the no-requirements entry stays a hit.
func TestPrepareNoRequirementsWithoutPip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o := f.opts()
	o.seedDir = filepath.Join(t.TempDir(), "seeds") // empty: no seed yet

	e1 := prepare(t, o, Request{Binary: "python3"})
	if e1.CacheHit || !strings.HasPrefix(e1.Dir, f.cache+string(filepath.Separator)) || e1.Python != venvPython(e1.Dir) {
		t.Fatalf("first no-requirements Prepare: %+v", e1)
	}
	if seeds, _ := os.ReadDir(o.seedDir); len(seeds) != 0 {
		t.Fatalf("a seed was built for a task with nothing to install: %v", seeds)
	}
	log := f.log.String()
	if strings.Contains(log, "pip seed venv") || strings.Contains(log, "ensurepip") || !strings.Contains(log, "created without pip") {
		t.Fatalf("log of the no-requirements build:\n%s", log)
	}
	if got := runPy(t, e1, "import importlib.util, sys; print(importlib.util.find_spec('pip') is None, sys.prefix)"); got != "True "+e1.Dir {
		t.Fatalf("venv python says %q, want no pip and prefix %s", got, e1.Dir)
	}
	if e1.Frozen != "" {
		t.Fatalf("freeze of an empty venv: %q", e1.Frozen)
	}
	if m, err := readMeta(e1.Dir); err != nil || m.Key != e1.Key {
		t.Fatalf("entry metadata: %+v %v", m, err)
	}
	e1.Release()

	// Pip arguments and the CUDA version do not change an empty venv.
	o2 := o
	o2.PipArgs = append([]string{"--extra-index-url", "https://mirror.example/simple"}, o.PipArgs...)
	e2 := prepare(t, o2, Request{Binary: "python3", CUDAVersion: "12.1"})
	if !e2.CacheHit || e2.Dir != e1.Dir || e2.Key != e1.Key {
		t.Fatalf("second no-requirements Prepare: hit=%v dir %s vs %s", e2.CacheHit, e2.Dir, e1.Dir)
	}
	e2.Release()

	// The first task with requirements builds the seed, once.
	e3 := prepare(t, o, Request{Binary: "python3", Requirements: fiveReqs})
	defer e3.Release()
	if e3.CacheHit || e3.Key == e1.Key || e3.Dir == e1.Dir || f.log.pipRuns() != 1 {
		t.Fatalf("requirements after an empty venv: hit=%v key=%s pip runs=%d", e3.CacheHit, e3.Key, f.log.pipRuns())
	}
	runPy(t, e3, "import beta, epsilon, pip")
	if seeds, _ := os.ReadDir(o.seedDir); len(seeds) == 0 {
		t.Fatal("no seed after a build that installs")
	}
	e4 := prepare(t, o, Request{Binary: "python3", Requirements: "gamma\n"})
	defer e4.Release()
	runPy(t, e4, "import gamma, pip")
	if n := strings.Count(f.log.String(), "pip seed venv"); n != 1 {
		t.Fatalf("pip seed built %d times, want 1:\n%s", n, f.log)
	}
	if got := f.entries(); len(got) != 3 {
		t.Fatalf("cache entries %v, want 3", got)
	}

	// Cache disabled: an empty venv without pip too, removed on Release.
	o.CacheDir = ""
	e5 := prepare(t, o, Request{Binary: "python3"})
	if e5.CacheHit || !strings.HasPrefix(e5.Dir, f.work) || exists(filepath.Join(venvBin(e5.Dir), "pip")) {
		t.Fatalf("no cache, no requirements: %+v", e5)
	}
	e5.Release()
	if exists(e5.Dir) {
		t.Fatal("Release left the uncached venv")
	}
}

// TestListScriptMatchesPipFreeze: the freeze read without pip is what pip
// freeze prints, for packages from an index and a wheel installed by path
// (a PEP 610 direct URL).
func TestListScriptMatchesPipFreeze(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	repo := t.TempDir()
	whl := writeWheel(t, repo, wheel{name: "zeta", version: "0.1"})
	for _, tc := range []struct {
		name string
		reqs string
		want []string
	}{
		{"index", fiveReqs, []string{"alpha==1.0", "beta==1.0", "epsilon==1.0"}},
		{"direct url", whl + "\ngamma\n", []string{"zeta @ file://" + whl + "#sha256=", "gamma==1.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := prepare(t, f.opts(), Request{Binary: "python3", Requirements: tc.reqs})
			defer e.Release()
			p := &prep{o: f.opts(), log: f.log, env: pythonEnv(testEnv())}
			pipOut, err := exec.Command(e.Python, "-m", "pip", "--disable-pip-version-check", "freeze").Output()
			if err != nil {
				t.Fatalf("pip freeze: %v", err)
			}
			got := p.listInstalled(context.Background(), e.Python)
			if want := freezeLines(pipOut); got != want || want == "" {
				t.Fatalf("freeze without pip:\n%s\npip freeze:\n%s", got, want)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("freeze lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestProbeFields: the probe reads empty last fields (no ensurepip, no
// venv) instead of failing, and a Python without the venv module cannot
// make even an empty environment.
func TestProbeFields(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, pip, venv string
		wantPip         string
		wantVenv        bool
		reqs, wantErr   string // Prepare with these requirements fails so
	}{
		{"full", "23.2.1", "venv", "23.2.1", true, "", ""},
		{"no ensurepip", "", "venv", "", true, "gamma", "cannot create virtual environments with pip"},
		{"no venv", "", "", "", false, "", "no venv module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := filepath.Join(dir, "python-"+strings.ReplaceAll(tc.name, " ", "-"))
			script := "#!/bin/sh\nprintf '3.11.7\\n" + fake + "\\n/usr\\n3.11.7 (main)\\n" + tc.pip + "\\n" + tc.venv + "\\nend\\n'\n"
			testbin.WriteScript(t, fake, script)
			in, err := probe(context.Background(), fake, nil)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			if in.Pip != tc.wantPip || in.Venv != tc.wantVenv || in.Version != "3.11.7" || in.Path != fake {
				t.Fatalf("probe: %+v", in)
			}
			if tc.wantErr == "" {
				return
			}
			o := Options{CacheDir: filepath.Join(t.TempDir(), "cache"), seedDir: filepath.Join(t.TempDir(), "seeds")}
			_, err = Prepare(context.Background(), o, Request{Binary: fake, Requirements: tc.reqs})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Prepare: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestSeedFromWheelsMatchesEnsurepip: the seed made by unpacking
// ensurepip's wheels holds what `python -m venv` (ensurepip) installs:
// the same distributions and versions, the same pip scripts, each of
// which runs; and an interpreter whose wheels do not fit falls back to
// ensurepip.
func TestSeedFromWheelsMatchesEnsurepip(t *testing.T) {
	t.Parallel()
	needVenv(t)
	ctx := context.Background()
	p := &prep{log: &syncBuf{}, lg: slog.New(slog.DiscardHandler), env: pythonEnv(testEnv())}
	in, err := findInterpreter(ctx, "python3", "", p.env, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.seedWheels(ctx, in); err != nil {
		t.Skipf("this python3's ensurepip wheels are not where ensurepip keeps them (%v): seeds use ensurepip", err)
	}
	root := t.TempDir()
	fast, ref := filepath.Join(root, "fast"), filepath.Join(root, "ref")
	start := time.Now()
	if err := p.seedFromWheels(ctx, in, fast); err != nil {
		t.Fatalf("seedFromWheels: %v", err)
	}
	t.Logf("seed from wheels: %s", time.Since(start))
	start = time.Now()
	if out, err := exec.Command(in.Path, "-m", "venv", ref).CombinedOutput(); err != nil {
		t.Fatalf("python -m venv: %v %s", err, out)
	}
	t.Logf("python -m venv (ensurepip): %s", time.Since(start))
	freeze := func(dir string) string {
		out, err := exec.Command(venvPython(dir), "-m", "pip", "--disable-pip-version-check", "freeze", "--all").Output()
		if err != nil {
			t.Fatalf("pip freeze --all in %s: %v", dir, err)
		}
		return string(out)
	}
	if a, b := freeze(fast), freeze(ref); a != b || !strings.Contains(a, "pip=="+in.Pip) {
		t.Fatalf("seed from wheels:\n%s\nensurepip:\n%s", a, b)
	}
	scripts := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(venvBin(dir), "pip*"))
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	if a, b := scripts(fast), scripts(ref); !reflect.DeepEqual(a, b) || len(a) != 3 {
		t.Fatalf("pip scripts %v, ensurepip makes %v", a, b)
	}
	for _, s := range scripts(fast) {
		if out, err := exec.Command(filepath.Join(venvBin(fast), s), "--version").CombinedOutput(); err != nil ||
			!strings.Contains(string(out), fast) {
			t.Fatalf("%s --version: %v %s", s, err, out)
		}
	}

	// Wheels that do not match ensurepip's version: ensurepip makes the seed.
	other := *in
	other.Pip = "0.0.0"
	log := &syncBuf{}
	p2 := &prep{log: log, lg: slog.New(slog.DiscardHandler), env: p.env}
	dir, err := p2.ensureSeed(ctx, &other, filepath.Join(root, "seeds"))
	if err != nil || !strings.Contains(log.String(), "with ensurepip") {
		t.Fatalf("fallback seed: %v\n%s", err, log)
	}
	if out, err := exec.Command(venvPython(dir), "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Fatalf("pip in the ensurepip seed: %v %s", err, out)
	}
}
