package pyenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareNoRequirementsWithoutPip: on an empty cache, a task with
// nothing to install gets a venv without pip and no seed is built
// (ensurepip never runs); a later task with requirements builds the seed
// then and still works, and the no-requirements entry stays a hit.
func TestPrepareNoRequirementsWithoutPip(t *testing.T) {
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
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
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
