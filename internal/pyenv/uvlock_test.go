package pyenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sampleUVLock = `version = 1
requires-python = ">=3.9"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "alpha" },
    { name = "winonly", marker = "sys_platform == 'win32'" },
    { name = "fromgit" },
]

[package.metadata]
requires-dist = [{ name = "alpha", specifier = "==1.0" }]

[[package]]
name = "alpha"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
wheels = [
    { url = "https://files.example/alpha-1.0-py3-none-any.whl", hash = "sha256:00", size = 10 },
]

[[package]]
name = "winonly"
version = "2.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "fromgit"
version = "0.3.0"
source = { git = "https://git.example/org/fromgit.git?rev=main#0123456789abcdef0123456789abcdef01234567" }
`

func TestUVLockRequirements(t *testing.T) {
	t.Parallel()
	got, err := uvLockRequirements(sampleUVLock)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"alpha==1.0",
		"winonly==2.0 ; (sys_platform == 'win32')",
		"fromgit @ git+https://git.example/org/fromgit.git@0123456789abcdef0123456789abcdef01234567",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if _, err := uvLockRequirements("[[package]]\nname = \"x\"\nsource = { registry = \"r\" }\n"); err == nil {
		t.Fatal("no error for a registry package without a version")
	}
}

// TestPrepareFromUVLock: a repository locked with uv (here: alpha from the
// local index; the Windows-only package is skipped by its marker) gets its
// locked versions, and the lock beats requirements.txt.
func TestPrepareFromUVLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	repo := t.TempDir()
	lock := strings.ReplaceAll(sampleUVLock, "    { name = \"fromgit\" },\n", "")
	lock = lock[:strings.Index(lock, "[[package]]\nname = \"fromgit\"")]
	os.WriteFile(filepath.Join(repo, "uv.lock"), []byte(lock), 0o644)
	os.WriteFile(filepath.Join(repo, "requirements.txt"), []byte("beta==1.0\n"), 0o644)
	e := prepare(t, f.opts(), Request{RepoDir: repo})
	defer e.Release()
	if got := runPy(t, e, "import alpha; print(alpha.VALUE)"); got != "alpha-1.0" {
		t.Fatalf("uv.lock environment imports %q", got)
	}
	if strings.Contains(e.Frozen, "beta") || strings.Contains(e.Frozen, "winonly") {
		t.Fatalf("frozen = %q: requirements.txt or the Windows-only package was installed", e.Frozen)
	}
	if !strings.Contains(f.log.String(), "using uv.lock") {
		t.Fatalf("log:\n%s", f.log.String())
	}
}
