package vcs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	cases := []struct {
		name string
		src  Source
		want string
	}{
		{"option as repository", Source{Repository: "--upload-pack=touch " + marker}, "must not start with '-'"},
		{"ssh option as repository", Source{Repository: "-oProxyCommand=touch " + marker}, "must not start with '-'"},
		{"ext transport", Source{Repository: "ext::sh -c touch% " + marker}, `"ext::" transport is not allowed`},
		{"file transport", Source{Repository: "file::" + f.upstream}, `"file::" transport is not allowed`},
		{"fd transport", Source{Repository: "fd::3"}, "transport is not allowed"},
		{"ssh host option", Source{Repository: "ssh://-oProxyCommand=x/repo.git"}, "must not start with '-'"},
		{"ssh user option", Source{Repository: "ssh://-oProxyCommand=x@host/repo.git"}, "must not start with '-'"},
		{"scp host option", Source{Repository: "-oProxyCommand=x:repo"}, "must not start with '-'"},
		{"scp path option", Source{Repository: "host:-x"}, "must not start with '-'"},
		{"newline in URL", Source{Repository: "https://host/x\n--upload-pack=y"}, "control characters"},
		{"relative path", Source{Repository: "../../etc"}, "not a URL"},
		{"unknown scheme", Source{Repository: "ftp://host/x.git"}, "unsupported scheme"},
		{"query string", Source{Repository: "https://host/x.git?--upload-pack=y"}, "query strings"},
		{"empty", Source{}, "empty"},
		{"branch option", Source{Branch: "--orphan=x"}, "must not start with '-'"},
		{"branch shell", Source{Branch: "main;touch " + marker}, "not allowed in a git ref name"},
		{"branch subshell", Source{Branch: "$(touch " + marker + ")"}, "not allowed in a git ref name"},
		{"branch backtick", Source{Branch: "`id`"}, "not allowed in a git ref name"},
		{"branch previous", Source{Branch: "@{-1}"}, "not allowed in a git ref name"},
		{"branch dotdot", Source{Branch: "a..b"}, "not a valid git ref name"},
		{"branch lock", Source{Branch: "main.lock"}, "not a valid git branch or tag name"},
		{"branch trailing slash", Source{Branch: "main/"}, "not a valid git branch or tag name"},
		{"tag option", Source{Tag: "-h"}, "must not start with '-'"},
		{"tag pipe", Source{Tag: "v1|touch " + marker}, "not allowed in a git ref name"},
		{"commit short", Source{Commit: "abc"}, "must be a hexadecimal commit id"},
		{"commit not hex", Source{Commit: "xyz12345"}, "must be a hexadecimal commit id"},
		{"commit option", Source{Commit: "--all"}, "must be a hexadecimal commit id"},
		{"commit shell", Source{Commit: f.c1 + ";id"}, "must be a hexadecimal commit id"},
		{"commit too long", Source{Commit: strings.Repeat("a", 65)}, "must be a hexadecimal commit id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, _, argv := testOptions(t, t.TempDir())
			src := tc.src
			if src.Repository == "" && tc.name != "empty" {
				src.Repository = f.upstream
			}
			dir := filepath.Join(t.TempDir(), "code")
			res, err := Checkout(testContext(t), o, src, dir)
			if err == nil {
				t.Fatalf("accepted: %+v", res)
			}
			e := asError(t, err)
			if e.Kind != KindInvalid || !strings.Contains(e.Reason, tc.want) {
				t.Errorf("reason %q (kind %s), want %q", e.Reason, e.Kind, tc.want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("an injected command ran")
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("%s was created", dir)
			}
			log, _ := os.ReadFile(argv)
			for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
				if line != "" && !strings.HasPrefix(line, "check-ref-format --branch ") {
					t.Errorf("git ran for invalid input: %s", line)
				}
			}
		})
	}
}

func TestDestinationNotEmpty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o, _, _ := testOptions(t, t.TempDir())
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keep.txt"), "mine\n")
	_, err := Checkout(testContext(t), o, Source{Repository: f.upstream}, dir)
	if e := asError(t, err); e.Kind != KindInvalid || !strings.Contains(e.Reason, "is not empty") {
		t.Errorf("%q", e.Reason)
	}
	if readFile(t, filepath.Join(dir, "keep.txt")) != "mine\n" {
		t.Error("existing content was touched")
	}
	// An existing empty directory is fine, and stays after a failure.
	empty := t.TempDir()
	if _, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Tag: "v404"}, empty); err == nil {
		t.Fatal("missing tag accepted")
	}
	if !isEmptyOrAbsent(empty) {
		t.Error("failed checkout left files behind")
	}
	if _, err := os.Stat(empty); err != nil {
		t.Errorf("the caller's directory was removed: %v", err)
	}
}

func TestHostileDiffPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o, _, _ := testOptions(t, t.TempDir())
	outside := filepath.Join(t.TempDir(), "victim.txt")
	diff := "diff --git a/../../x b/../../x\n--- a/../../../../../../.." + outside + "\n+++ b/x\n@@ -0,0 +1 @@\n+x\n"
	_, err := Checkout(testContext(t), o, Source{Repository: f.upstream, Diff: diff}, filepath.Join(t.TempDir(), "code"))
	if e := asError(t, err); e.Kind != KindDiff || !strings.Contains(e.Reason, "outside the repository") {
		t.Errorf("%q (%s)", e.Reason, e.Kind)
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("a file was created outside the tree")
	}
}

func TestLiteralScript(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "code")
	p, err := LiteralScript(dir, "train.py", "print('hi')\n")
	if err != nil || p != filepath.Join(dir, "train.py") || readFile(t, p) != "print('hi')\n" {
		t.Fatalf("%q %v", p, err)
	}
	p, err = LiteralScript(dir, "tools/run.sh", "#!/bin/sh\necho hi\n")
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	for entry, want := range map[string]string{"-m pkg.mod": "untitled.py", "": "untitled.py", "-c echo": "untitled.sh"} {
		if p, err := LiteralScript(dir, entry, "x"); err != nil || filepath.Base(p) != want {
			t.Errorf("%q: %q %v", entry, p, err)
		}
	}
	// A symbolic link in the tree must not lead the write outside.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../evil.py", "/etc/evil.py", "a/../../evil.py", "link/evil.py", "--help", ".", "a/\x00.py"} {
		_, err := LiteralScript(dir, bad, "x")
		if e := asError(t, err); e.Kind != KindInvalid || !strings.Contains(e.Reason, "invalid entry point") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the tree: %v", entries)
	}
}

func TestIsLiteralScript(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"":                                  false,
		"  \n":                              false,
		"diff --git a/x b/x\n":              false,
		"\ndiff --git a/x b/x\n":            false,
		"submodule lib\ndiff --git a/x b/x": false,
		"print('hello')\n":                  true,
		"#!/bin/bash\necho hi\n":            true,
		"submodule = 3\nprint(submodule)":   true,
	}
	for in, want := range cases {
		if got := IsLiteralScript(in); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

func TestSafeJoin(t *testing.T) {
	t.Parallel()
	for rel, want := range map[string]string{"": "/r", ".": "/r", "a/b.py": "/r/a/b.py", "a/../b": "/r/b"} {
		if got, err := SafeJoin("/r", rel); err != nil || got != want {
			t.Errorf("%q: %q %v", rel, got, err)
		}
	}
	for _, rel := range []string{"..", "../x", "a/../../x", "/abs", "x/../..", "\x00"} {
		if _, err := SafeJoin("/r", rel); err == nil {
			t.Errorf("%q accepted", rel)
		}
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cache := t.TempDir()
	env, cleanup, err := Env(Options{CacheDir: cache, Credentials: Credentials{User: "alice", Password: "pw'$(id)\"", Host: "git.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	helper := vars["GIT_ASKPASS"]
	if vars["GIT_TERMINAL_PROMPT"] != "0" || helper == "" || filepath.Dir(helper) != cache {
		t.Fatalf("env %v", env)
	}
	fi, err := os.Stat(helper)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("helper %v %v", fi, err)
	}
	if strings.Contains(readFile(t, helper), "pw'") {
		t.Error("the helper file holds the password")
	}
	ask := func(prompt string) string {
		cmd := exec.Command(sh, helper, prompt)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	for prompt, want := range map[string]string{
		"Username for 'https://git.example.com': ":        "alice",
		"Password for 'https://alice@git.example.com': ":  "pw'$(id)\"",
		"Username for 'https://git.example.com:8443': ":   "alice",
		"Password for 'https://alice@evil.example.org': ": "",
		"Username for 'https://git.example.com.evil': ":   "",
	} {
		if got := ask(prompt); got != want {
			t.Errorf("%q: %q, want %q", prompt, got, want)
		}
	}
	cleanup()
	if _, err := os.Stat(helper); err == nil {
		t.Error("cleanup left the helper")
	}
	env, cleanup, err = Env(Options{})
	if err != nil || len(env) == 0 || strings.Contains(strings.Join(env, " "), "GIT_ASKPASS") {
		t.Errorf("without credentials: %v %v", env, err)
	}
	cleanup()
}
