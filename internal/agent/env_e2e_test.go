package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
)

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// repoWithDiff makes a repository whose committed main.py the uncommitted
// diff changes; it returns the repo, its commit and the diff.
func repoWithDiff(t *testing.T) (dir, commit, diff string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir = t.TempDir()
	gitRun(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "main.py"), []byte("import mathlib\nprint('result', mathlib.triple(14))\n"), 0o644)
	gitRun(t, dir, "add", "main.py")
	gitRun(t, dir, "commit", "-q", "-m", "first")
	commit = gitRun(t, dir, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "main.py"), []byte("import mathlib\nprint('result', mathlib.triple(14) + 1)\n"), 0o644)
	diff = gitRun(t, dir, "diff", "HEAD") + "\n"
	gitRun(t, dir, "checkout", "-q", "main.py")
	return dir, commit, diff
}

// wheels builds the task's requirement and returns the find-links folder.
func wheels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := testbin.BuildWheel(dir, "mathlib", "1.0", map[string]string{"mathlib.py": "def triple(x):\n    return 3 * x\n"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (e *env) gitTask(name, repo, commit, diff string) string {
	e.t.Helper()
	var created api.IDResponse
	err := e.api.Call(context.Background(), "", "tasks.create", map[string]any{"name": name, "type": "training",
		"script": map[string]any{"binary": "python3", "repository": repo, "version_num": commit, "entry_point": "main.py",
			"working_dir": ".", "diff": diff, "requirements": map[string]any{"pip": "mathlib==1.0\n"}}}, &created, apiclient.Default)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.api.Call(context.Background(), "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	return created.ID
}

// TestGitTaskWithRequirementsAndCache: a task from a local git repository
// at a commit, with an uncommitted diff and a requirement from a local
// package index, prints what its code computes; the same task again reuses
// the cached checkout and environment.
func TestGitTaskWithRequirementsAndCache(t *testing.T) {
	t.Parallel()
	repo, commit, diff := repoWithDiff(t)
	e := newEnv(t)
	env := append(e.daemonEnv(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+wheels(t),
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH="+filepath.Join(e.dir, "venvs")) // a cold cache of its own
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
	first := e.gitTask("git task", "file://"+repo, commit, diff)
	tk := e.waitStatus(first, 120*time.Second, "completed", "failed")
	log := strings.Join(e.logLines(first), "\n")
	if tk.Status != "completed" || !strings.Contains(log, "result 43") {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	reqs, _ := tk.Script["requirements"].(map[string]any)
	if pip, _ := reqs["pip"].(string); !strings.Contains(pip, "mathlib==1.0") || reqs["org_pip"] != "mathlib==1.0\n" {
		t.Fatalf("requirements written back = %v", reqs)
	}
	if !strings.Contains(log, "cache miss") {
		t.Fatalf("first run did not build its environment:\n%s", log)
	}
	second := e.gitTask("git task again", "file://"+repo, commit, diff)
	tk = e.waitStatus(second, 60*time.Second, "completed", "failed")
	log = strings.Join(e.logLines(second), "\n")
	if tk.Status != "completed" || !strings.Contains(log, "result 43") || !strings.Contains(log, "clone") ||
		!strings.Contains(log, "(cache hit") {
		t.Fatalf("second run = %s\n%s", tk.Status, log)
	}
	t.Logf("second run environment line: %s", grepLine(log, "Environment:"))
}

func grepLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, prefix) {
			return l
		}
	}
	return ""
}

// TestPrivateRepositoryCredentials: a repository served over HTTP with basic
// auth clones with the daemon's --git-user/--git-pass, and the password
// appears nowhere: not in the task log, the daemon's output, or the task.
func TestPrivateRepositoryCredentials(t *testing.T) {
	t.Parallel()
	repo, commit, diff := repoWithDiff(t)
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skip("git --exec-path failed")
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend is not installed (%v)", err)
	}
	root := t.TempDir()
	gitRun(t, root, "clone", "--quiet", "--bare", repo, filepath.Join(root, "private.git"))
	const user, pass = "builder", "s3cr3t-Pa55-word"
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull}, InheritEnv: []string{"PATH"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	e := newEnv(t)
	env := append(e.daemonEnv(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+wheels(t))
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground",
		"--polling-interval", "0.5", "--git-user", user, "--git-pass", pass)
	id := e.gitTask("private repo", srv.URL+"/private.git", commit, diff)
	tk := e.waitStatus(id, 120*time.Second, "completed", "failed")
	log := strings.Join(e.logLines(id), "\n")
	if tk.Status != "completed" || !strings.Contains(log, "result 43") {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	full := e.get(id)
	for name, text := range map[string]string{"task log": log, "daemon output": d.Output(), "task": fmt.Sprintf("%+v", full)} {
		if strings.Contains(text, pass) {
			t.Errorf("the git password appears in the %s", name)
		}
	}
	// A wrong password fails the task with a reason that says what to check.
	e2 := newEnv(t)
	// (its own checkout cache: a cached mirror would need no credentials)
	env2 := append(e2.daemonEnv(), "CLEARML_AGENT__AGENT__VCS_CACHE__PATH="+filepath.Join(e2.dir, "vcs"))
	d2 := testbin.Start(t, env2, "--config-file", e2.srv.ConfigPath, "daemon", "--queue", "default", "--foreground",
		"--polling-interval", "0.5", "--git-user", user, "--git-pass", "wrong")
	bad := e2.gitTask("bad credentials", srv.URL+"/private.git", commit, diff)
	tk = e2.waitStatus(bad, 60*time.Second, "completed", "failed")
	if tk.Status != "failed" || !strings.Contains(tk.StatusReason, "git_user") {
		t.Fatalf("wrong password: %s %q\n%s", tk.Status, tk.StatusReason, d2.Output())
	}
}

// TestBadTasksFailClearly: hostile or broken task fields fail the task with
// a reason that says what is wrong, run nothing through a shell, and leave
// the daemon serving the next task.
func TestBadTasksFailClearly(t *testing.T) {
	t.Parallel()
	repo, commit, _ := repoWithDiff(t)
	e := newEnv(t)
	canary := filepath.Join(e.dir, "canary")
	d := e.daemon("--queue", "default")
	cases := []struct {
		name   string
		script map[string]any
		reason string
	}{
		{"option injection", map[string]any{"repository": "--upload-pack=touch " + canary, "entry_point": "main.py"}, "repository"},
		{"escaping entry point", map[string]any{"repository": "file://" + repo, "version_num": commit, "entry_point": "../../../etc/passwd"}, "entry point"},
		{"missing commit", map[string]any{"repository": "file://" + repo, "version_num": "deadbeefdeadbeef", "entry_point": "main.py"}, "not found"},
		{"shell in branch", map[string]any{"repository": "file://" + repo, "branch": "main; touch " + canary, "entry_point": "main.py"}, "branch"},
		{"diff that does not apply", map[string]any{"repository": "file://" + repo, "version_num": commit, "entry_point": "main.py",
			"diff": "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-old\n+new\n"}, "apply"},
		{"no script at all", map[string]any{"entry_point": "main.py"}, "neither a repository nor a script"},
	}
	ctx := context.Background()
	for _, c := range cases {
		var created api.IDResponse
		c.script["binary"] = "python3"
		if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": c.name, "type": "training", "script": c.script}, &created, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		tk := e.waitStatus(created.ID, 60*time.Second, "completed", "failed", "stopped")
		if tk.Status != "failed" || !strings.Contains(tk.StatusReason, c.reason) {
			t.Errorf("%s: %s %q, want failed with %q", c.name, tk.Status, tk.StatusReason, c.reason)
		}
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatalf("a hostile field ran a command")
	}
	ok := e.task("still serving", "", "print('fine')\n")
	if tk := e.waitStatus(ok, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("daemon after bad tasks: %s\n%s", tk.Status, d.Output())
	}
}
