package pyenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPoetryLock: a repository with pyproject.toml and poetry.lock (locked
// against a local package index) gets its environment from poetry; the
// same lock again is a cache hit. (On a machine with a desktop keyring
// library but no desktop session, as here, poetry install fails with
// "Failed to unlock the item!" unless the agent turns the keyring off.)
func TestPoetryLock(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("poetry"); err != nil {
		t.Skip("poetry is not installed (apt-get install python3-poetry): the poetry.lock path is not tested")
	}
	f := newFixture(t)
	// A PEP 503 simple index over the fixture's wheels.
	idx := http.NewServeMux()
	idx.HandleFunc("/simple/{pkg}/", func(w http.ResponseWriter, r *http.Request) {
		matches, _ := filepath.Glob(filepath.Join(f.links, r.PathValue("pkg")+"-*.whl"))
		for _, m := range matches {
			b, _ := os.ReadFile(m)
			sum := sha256.Sum256(b)
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a>\n", filepath.Base(m), hex.EncodeToString(sum[:]), filepath.Base(m))
		}
	})
	idx.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(f.links))))
	srv := httptest.NewServer(idx)
	defer srv.Close()
	repo := t.TempDir()
	project := fmt.Sprintf(`[tool.poetry]
name = "locked-demo"
version = "0.1.0"
description = ""
authors = ["t <t@example.com>"]

[tool.poetry.dependencies]
python = "^3.8"
alpha = "1.0"

[[tool.poetry.source]]
name = "local"
url = "%s/simple/"
default = true

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
`, srv.URL)
	if err := os.WriteFile(filepath.Join(repo, "pyproject.toml"), []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	lock := exec.Command("poetry", "lock", "--no-update", "--no-interaction")
	lock.Dir, lock.Env = repo, withoutDesktopKeyring(append(testEnv(), "HOME="+t.TempDir()))
	if out, err := lock.CombinedOutput(); err != nil {
		t.Fatalf("poetry lock: %v\n%s", err, out)
	}
	o := f.opts()
	o.Env = append(o.Env, "HOME="+t.TempDir())
	e := prepare(t, o, Request{RepoDir: repo})
	defer e.Release()
	if got := runPy(t, e, "import alpha; print(alpha.VALUE)"); got != "alpha-1.0" {
		t.Fatalf("poetry environment imports %q", got)
	}
	if e.CacheHit || !strings.Contains(f.log.String(), "using poetry.lock") || !strings.Contains(e.Frozen, "alpha==1.0") {
		t.Fatalf("first prepare: hit=%v frozen=%q\n%s", e.CacheHit, e.Frozen, f.log.String())
	}
	e2 := prepare(t, o, Request{RepoDir: repo})
	defer e2.Release()
	if !e2.CacheHit || e2.Dir != e.Dir {
		t.Fatalf("same lock again was not a cache hit")
	}
}

func TestWithoutDesktopKeyring(t *testing.T) {
	t.Parallel()
	// configured is a home whose ~/.config holds a keyring configuration.
	home, configured := t.TempDir(), t.TempDir()
	config := filepath.Join(configured, ".config")
	if err := os.MkdirAll(filepath.Join(config, "python_keyring"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(config, "python_keyring", "keyringrc.cfg"), []byte("[backend]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const null = "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring"
	tests := []struct {
		name string
		env  []string
		want string // the variable added, "" for none
	}{
		{"no keyring configured", []string{"HOME=" + home}, null},
		{"no HOME", []string{"PATH=/bin"}, null},
		{"backend chosen", []string{"HOME=" + home, "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring"}, ""},
		{"keyringrc.cfg in XDG_CONFIG_HOME", []string{"HOME=" + home, "XDG_CONFIG_HOME=" + config}, ""},
		{"keyringrc.cfg in ~/.config", []string{"HOME=" + configured, "XDG_CONFIG_HOME="}, ""},
		{"keyringrc.cfg elsewhere", []string{"HOME=" + configured, "XDG_CONFIG_HOME=" + home}, null},
	}
	for _, tt := range tests {
		got := withoutDesktopKeyring(tt.env)
		added := ""
		if len(got) > len(tt.env) {
			added = got[len(got)-1]
		}
		if added != tt.want || len(got) < len(tt.env) {
			t.Errorf("%s: %q became %q", tt.name, tt.env, got)
		}
	}
}
