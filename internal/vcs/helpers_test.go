package vcs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// isolatedEnv keeps the developer's git configuration out of the tests.
var isolatedEnv = []string{"GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C"}

func needGit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed; skipping tests that need real repositories")
	}
	return p
}

// git runs a git command for test setup.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	full := append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=test@example.com",
		"-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "init.defaultBranch=main",
		"-c", "protocol.file.allow=always"}, args...)
	cmd := exec.Command("git", full...)
	cmd.Env = append(os.Environ(), isolatedEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixture is an upstream repository with history:
//
//	c1 (tag v1.0, annotated) - c2 (adds submodule libs/sub) - c4 (main)
//	                              \- c3 (branch feature, adds feature.txt)
type fixture struct {
	upstream, sub  string
	c1, c2, c3, c4 string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	needGit(t)
	base := t.TempDir()
	f := &fixture{upstream: filepath.Join(base, "upstream"), sub: filepath.Join(base, "sub")}
	for _, d := range []string{f.upstream, f.sub} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		git(t, d, "init", "--quiet")
	}
	writeFile(t, filepath.Join(f.sub, "sub.txt"), "sub\n")
	git(t, f.sub, "add", ".")
	git(t, f.sub, "commit", "--quiet", "-m", "sub")

	writeFile(t, filepath.Join(f.upstream, "hello.py"), "print('v1')\nprint('two')\nprint('three')\n")
	git(t, f.upstream, "add", ".")
	git(t, f.upstream, "commit", "--quiet", "-m", "c1")
	f.c1 = git(t, f.upstream, "rev-parse", "HEAD")
	git(t, f.upstream, "tag", "-a", "-m", "release", "v1.0")
	git(t, f.upstream, "submodule", "--quiet", "add", f.sub, "libs/sub")
	git(t, f.upstream, "commit", "--quiet", "-m", "c2")
	f.c2 = git(t, f.upstream, "rev-parse", "HEAD")
	git(t, f.upstream, "checkout", "--quiet", "-b", "feature")
	writeFile(t, filepath.Join(f.upstream, "feature.txt"), "feature\n")
	git(t, f.upstream, "add", ".")
	git(t, f.upstream, "commit", "--quiet", "-m", "c3")
	f.c3 = git(t, f.upstream, "rev-parse", "HEAD")
	git(t, f.upstream, "checkout", "--quiet", "main")
	writeFile(t, filepath.Join(f.upstream, "hello.py"), "print('v2')\nprint('two')\nprint('three')\n")
	git(t, f.upstream, "commit", "--quiet", "-am", "c4")
	f.c4 = git(t, f.upstream, "rev-parse", "HEAD")
	return f
}

// testOptions returns options with an isolated git configuration, a cache
// dir, a log buffer and a git wrapper that records every argument list.
func testOptions(t *testing.T, cache string) (Options, *testwait.Output, string) {
	t.Helper()
	real := needGit(t)
	dir := t.TempDir()
	argv := filepath.Join(dir, "argv.log")
	wrapper := filepath.Join(dir, "git-wrapper.sh")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + argv + "'\nexec '" + real + "' \"$@\"\n"
	testbin.WriteScript(t, wrapper, script)
	log := &testwait.Output{}
	return Options{CacheDir: cache, GitBinary: wrapper, Log: log, ExtraEnv: isolatedEnv}, log, argv
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// asError returns err as *Error or fails the test.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *vcs.Error", err, err)
	}
	return e
}

// isEmptyOrAbsent reports whether dir has no entries.
func isEmptyOrAbsent(dir string) bool {
	entries, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0)
}
