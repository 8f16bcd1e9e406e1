package gitinfo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs a git command in dir with a fixed identity and no user or
// system configuration.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.com",
		"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; skipping tests that need a real checkout")
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadCheckout(t *testing.T) {
	t.Parallel()
	needGit(t)
	root := t.TempDir()
	git(t, root, "init", "-q")
	git(t, root, "symbolic-ref", "HEAD", "refs/heads/main")
	write(t, filepath.Join(root, "src", "train.py"), "print('hello')\n")
	write(t, filepath.Join(root, "README"), "readme\n")
	git(t, root, "add", ".")
	git(t, root, "commit", "-q", "-m", "first")
	git(t, root, "remote", "add", "origin", "https://user:s3cret@git.example.com/org/repo.git")
	git(t, root, "remote", "add", "backup", "git@example.org:org/repo.git")
	write(t, filepath.Join(root, "src", "train.py"), "print('hello, world')\n")
	write(t, filepath.Join(root, "untracked.txt"), "not in the diff\n")
	commit := git(t, root, "rev-parse", "HEAD")

	info, err := Read(context.Background(), filepath.Join(root, "src", "train.py"))
	if err != nil {
		t.Fatal(err)
	}
	wantRoot, _ := filepath.EvalSymlinks(root)
	if info.Root != wantRoot {
		t.Errorf("Root = %q, want %q", info.Root, wantRoot)
	}
	if info.Remote != "origin" || info.RemoteURL != "https://git.example.com/org/repo.git" {
		t.Errorf("remote = %q %q, want origin without credentials", info.Remote, info.RemoteURL)
	}
	if info.Branch != "main" {
		t.Errorf("Branch = %q, want main", info.Branch)
	}
	if info.Commit != commit {
		t.Errorf("Commit = %q, want %q", info.Commit, commit)
	}
	for _, want := range []string{"diff --git a/src/train.py b/src/train.py", "-print('hello')", "+print('hello, world')"} {
		if !strings.Contains(info.Diff, want) {
			t.Errorf("Diff lacks %q:\n%s", want, info.Diff)
		}
	}
	if strings.Contains(info.Diff, "untracked") {
		t.Errorf("Diff shows an untracked file:\n%s", info.Diff)
	}

	// A folder inside the checkout reads the same; a detached HEAD has no branch.
	git(t, root, "checkout", "-q", "--detach")
	info, err = Read(context.Background(), filepath.Join(root, "src"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Branch != "" || info.Commit != commit || info.Root != wantRoot {
		t.Errorf("detached: %+v", info)
	}
}

func TestReadWithoutCommitOrRemote(t *testing.T) {
	t.Parallel()
	needGit(t)
	root := t.TempDir()
	git(t, root, "init", "-q")
	git(t, root, "symbolic-ref", "HEAD", "refs/heads/dev")
	write(t, filepath.Join(root, "a.py"), "x = 1\n")
	info, err := Read(context.Background(), filepath.Join(root, "a.py"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Commit != "" || info.Diff != "" || info.Remote != "" || info.RemoteURL != "" || info.Branch != "dev" {
		t.Errorf("empty repository: %+v", info)
	}
}

func TestReadNotRepository(t *testing.T) {
	t.Parallel()
	needGit(t)
	dir := t.TempDir()
	if _, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output(); err == nil {
		t.Skip("the temporary folder is inside a git checkout")
	}
	write(t, filepath.Join(dir, "script.py"), "print(1)\n")
	_, err := Read(context.Background(), filepath.Join(dir, "script.py"))
	if !errors.Is(err, ErrNotRepository) {
		t.Fatalf("Read = %v, want ErrNotRepository", err)
	}
	if _, err := Read(context.Background(), filepath.Join(dir, "missing.py")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read(missing) = %v, want a not-exist error", err)
	}
}

func TestStripCredentials(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:pass@host/x":         "https://host/x",
		"https://token@github.com/o/r.git": "https://github.com/o/r.git",
		"HTTP://u:p@host:8080/a/b?c=d":     "HTTP://host:8080/a/b?c=d",
		"https://host/path@with-at":        "https://host/path@with-at",
		"https://github.com/o/r.git":       "https://github.com/o/r.git",
		"git@github.com:o/r.git":           "git@github.com:o/r.git",
		"ssh://git@github.com/o/r.git":     "ssh://git@github.com/o/r.git",
		"https://us%40er:p%3Ass@host/r":    "https://host/r",
		"https://a:b@c@host/r":             "https://host/r",
		"/srv/git/repo.git":                "/srv/git/repo.git",
	} {
		if got := StripCredentials(in); got != want {
			t.Errorf("StripCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}
