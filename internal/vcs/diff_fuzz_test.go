package vcs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var diffSeeds = []string{
	"diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n",
	"diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n",
	"diff --git a/x b/x\n--- a/../escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+x\n",
	"diff --git a/out/x b/out/x\n--- a/out/x\n+++ b/out/x\n@@ -0,0 +1 @@\n+through the link\n",
	"diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+../outside\n\\ No newline at end of file\n" +
		"diff --git a/l/y b/l/y\nnew file mode 100644\n--- /dev/null\n+++ b/l/y\n@@ -0,0 +1 @@\n+y\n",
	"--- \"a/q\\tx\"\t2024-01-01\n+++ \"b/q\\tx\"\n@@ -0,0 +1 @@\n+q\n",
	"submodule lib 0123..4567:\n\ndiff --git a/a.txt b/a.txt\n",
	"print('a literal script')\n",
	"  \n\t",
}

// FuzzDiffText: the pure parts of diff handling (IsLiteralScript, the
// "--- " path reader, SafeJoin) never panic, and SafeJoin's paths stay
// inside the root.
func FuzzDiffText(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add(s)
	}
	root := filepath.Join(string(filepath.Separator), "work", "repo")
	f.Fuzz(func(t *testing.T, diff string) {
		literal := IsLiteralScript(diff)
		if strings.HasPrefix(strings.TrimLeft(diff, " \t\r\n"), "diff ") && literal {
			t.Fatalf("IsLiteralScript(%q) for a diff", diff)
		}
		for _, line := range append(strings.Split(diff, "\n"), diff) {
			rest, ok := strings.CutPrefix(line, "--- ")
			if !ok {
				rest = line
			}
			for _, rel := range []string{diffPath(rest), strings.TrimPrefix(diffPath(rest), "a/")} {
				p, err := SafeJoin(root, rel)
				if err != nil {
					var e *Error
					if !errors.As(err, &e) || e.Kind != KindInvalid {
						t.Fatalf("SafeJoin(%q): error %#v", rel, err)
					}
					continue
				}
				if r, err := filepath.Rel(root, p); err != nil || (r != "." && !filepath.IsLocal(r)) {
					t.Fatalf("SafeJoin(%q) = %q, outside %s", rel, p, root)
				}
			}
		}
	})
}

// FuzzLiteralScript writes a task's script at its entry point in a fresh
// folder holding a symbolic link to a folder outside: the file written is
// inside the folder and holds the script, and nothing appears outside.
func FuzzLiteralScript(f *testing.F) {
	for _, s := range []string{"t.py", "sub/dir/t.py", "-m pkg.mod", "-c print(1)", "../x.py", "/etc/x", "link/x.py",
		"link/../t.py", "./", "a\x00b", " spaced name.py ", "-x"} {
		f.Add(s, "#!/bin/sh\necho hi\n")
	}
	f.Fuzz(func(t *testing.T, entryPoint, script string) {
		parent := t.TempDir()
		dir, outside := filepath.Join(parent, "code"), filepath.Join(parent, "outside")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		p, err := LiteralScript(dir, entryPoint, script)
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("LiteralScript(%q) wrote outside the code folder: %v", entryPoint, entries)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 2 {
			t.Fatalf("LiteralScript(%q) wrote next to the code folder: %v", entryPoint, entries)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("LiteralScript(%q): error %#v is not an *Error", entryPoint, err)
			}
			return
		}
		if r, err := filepath.Rel(dir, p); err != nil || !filepath.IsLocal(r) {
			t.Fatalf("LiteralScript(%q) = %q, outside %s", entryPoint, p, dir)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != script {
			t.Fatalf("LiteralScript(%q): %s holds %q, %v", entryPoint, p, b, err)
		}
	})
}

// FuzzApplyDiff applies diffs (git apply, as the agent does) to a
// repository holding a symbolic link to a folder outside it: whatever the
// diff, nothing is created outside the repository, and a failure is a
// KindDiff *Error.
func FuzzApplyDiff(f *testing.F) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		f.Skip("git is not installed")
	}
	for _, s := range diffSeeds {
		f.Add(s)
	}
	parent := f.TempDir()
	repo, outside := filepath.Join(parent, "repo"), filepath.Join(parent, "outside")
	env := append(os.Environ(), isolatedEnv...)
	run := func(args ...string) error {
		cmd := exec.Command(gitBin, append([]string{"-C", repo, "-c", "user.name=F", "-c", "user.email=f@example.com",
			"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return &gitError{args: args, stderr: string(out), err: err}
		}
		return nil
	}
	for _, d := range []string{repo, outside, filepath.Join(repo, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("one\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "sub", "b.txt"), []byte("b\n"), 0o644)
	if err := os.Symlink("../outside", filepath.Join(repo, "out")); err != nil {
		f.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "base"}} {
		if err := run(args...); err != nil {
			f.Fatal(err)
		}
	}
	r := &runner{bin: gitBin, env: append(env, "GIT_TERMINAL_PROMPT=0"), log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, diff string) {
		for _, args := range [][]string{{"reset", "-q", "--hard"}, {"clean", "-qfdx"}} {
			if err := run(args...); err != nil {
				t.Fatal(err)
			}
		}
		// What the diff's "--- a/" lines name inside .git and is not there.
		var inGit []string
		for _, line := range strings.Split(diff, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "--- ")
			rel, isA := strings.CutPrefix(diffPath(rest), "a/")
			if p, err := SafeJoin(repo, rel); ok && isA && err == nil && strings.HasPrefix(p, filepath.Join(repo, ".git")+string(filepath.Separator)) {
				if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
					inGit = append(inGit, p)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := applyDiff(ctx, r, repo, diff)
		for _, p := range inGit {
			if _, err := os.Lstat(p); err == nil {
				os.Remove(p) // so that the next input starts clean
				t.Fatalf("applying %q created %s inside .git", diff, p)
			}
		}
		// git 2.39's apply aborts on some malformed diffs (an assertion in
		// check_preimage) and --3way then leaves its index.lock: git's, not
		// applyDiff's, so it is only cleared for the next input.
		os.Remove(filepath.Join(repo, ".git", "index.lock"))
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("applying %q created %v outside the repository", diff, entries)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 2 {
			t.Fatalf("applying %q created files next to the repository: %v", diff, entries)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindDiff {
				t.Fatalf("applyDiff: error %#v is not a KindDiff *Error", err)
			}
		}
	})
}
