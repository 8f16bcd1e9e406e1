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
// same lock again is a cache hit.
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
	lock.Dir, lock.Env = repo, append(testEnv(), "HOME="+t.TempDir())
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
