package cli

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSubmitGitCheckout(t *testing.T) {
	t.Parallel()
	root, commit := gitRepo(t)
	e := newCmdEnv(t)
	dir := t.TempDir()
	reqs := writeFile(t, filepath.Join(dir, "requirements.txt"), "flask==2.0\nrequests\n")
	setup := writeFile(t, filepath.Join(dir, "setup.sh"), "apt-get install -y curl\n")
	script := filepath.Join(root, "sub", "train.py")
	out, errOut, code := e.run("submit", "--project", "Tests/Submit", "--name", "git task", "--script", script,
		"--queue", "gpu", "--create-queue", "--args", "lr=0.1", "epochs=3", "--args", "note=a=b", "--packages", "numpy>=1.0", "tqdm",
		"--requirements", reqs, "--tags", "nightly", "exp", "--docker", "python:3.12", "--docker_args", "-e A=1 --ipc=host",
		"--docker_bash_setup_script", setup, "--task-type", "testing")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.Contains(errOut, id) || !strings.Contains(errOut, `"gpu"`) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("summary on stderr = %q", errOut)
	}
	task := e.task(id)
	str := func(k string) string { s, _ := task.Script[k].(string); return s }
	for k, want := range map[string]string{"repository": "https://git.example.com/org/proj.git", "branch": "main",
		"version_num": commit, "entry_point": "train.py", "working_dir": "sub", "binary": "python3"} {
		if got := str(k); got != want {
			t.Errorf("script.%s = %q, want %q", k, got, want)
		}
	}
	if d := str("diff"); !strings.Contains(d, "-print('v1')") || !strings.Contains(d, "+print('v2')") {
		t.Errorf("script.diff = %q, want the uncommitted change", d)
	}
	reqMap, _ := task.Script["requirements"].(map[string]any)
	if pip, _ := reqMap["pip"].(string); pip != "flask==2.0\nrequests\nnumpy>=1.0\ntqdm\n" {
		t.Errorf("requirements.pip = %q", pip)
	}
	args := map[string]string{}
	for name, p := range task.Hyperparams["Args"] {
		args[name] = p.Value
	}
	if want := map[string]string{"lr": "0.1", "epochs": "3", "note": "a=b"}; !reflect.DeepEqual(args, want) {
		t.Errorf("hyperparams Args = %v, want %v", args, want)
	}
	if !slices.Equal(task.Tags, []string{"exp", "nightly"}) {
		t.Errorf("tags = %v", task.Tags)
	}
	wantContainer := map[string]string{"image": "python:3.12", "arguments": "-e A=1 --ipc=host", "setup_shell_script": "apt-get install -y curl\n"}
	if !reflect.DeepEqual(task.Container, wantContainer) {
		t.Errorf("container = %v, want %v", task.Container, wantContainer)
	}
	if task.Type != "testing" || task.Name != "git task" || task.Status != "queued" {
		t.Errorf("type, name, status = %q, %q, %q", task.Type, task.Name, task.Status)
	}
	if q, _ := task.Execution["queue"].(string); q != e.queueID("gpu") {
		t.Errorf("execution.queue = %q, want queue gpu", q)
	}
	if pid, err := findProject(e.ctx, e.c, "Tests/Submit"); err != nil || pid == "" || task.Project != pid {
		t.Errorf("project = %q, want the id of Tests/Submit (%q, %v)", task.Project, pid, err)
	}

	// A second submit reuses the project; --cwd moves the working folder.
	id2 := e.submit("--project", "Tests/Submit", "--script", script, "--cwd", ".", "--queue", "gpu", "--branch", "release")
	t2 := e.task(id2)
	if t2.Project != task.Project || t2.Name != "train.py" {
		t.Errorf("second task: project %q name %q", t2.Project, t2.Name)
	}
	if wd, ep, br := t2.Script["working_dir"], t2.Script["entry_point"], t2.Script["branch"]; wd != "." || ep != "sub/train.py" || br != "release" {
		t.Errorf("--cwd . --branch release: working_dir %v, entry_point %v, branch %v", wd, ep, br)
	}
}

func TestSubmitLiteralScript(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	dir := t.TempDir()
	text := "import sys\nprint('hello', sys.argv)\n"
	script := writeFile(t, filepath.Join(dir, "job.py"), text)
	id := e.submit("--script", script, "--packages", "numpy")
	task := e.task(id)
	if task.Script["diff"] != text || task.Script["repository"] != "" || task.Script["entry_point"] != "job.py" {
		t.Errorf("script = %v, want the file's text in diff and no repository", task.Script)
	}
	if task.Name != "job.py" || task.Type != "training" || task.Status != "queued" || task.Project != "" {
		t.Errorf("name %q type %q status %q project %q", task.Name, task.Type, task.Status, task.Project)
	}
	if q, _ := task.Execution["queue"].(string); q != e.queueID("default") {
		t.Errorf("execution.queue = %q, want the default queue", q)
	}
	if pip := task.Script["requirements"].(map[string]any)["pip"]; pip != "numpy\n" {
		t.Errorf("requirements.pip = %q", pip)
	}

	// A queue the server refuses to create fails the submit before a task exists.
	if _, errOut, code := e.run("submit", "--script", script, "--queue", "q", "--create-queue"); code != 1 || !strings.Contains(errOut, `creating queue "q"`) {
		t.Errorf("bad queue: exit %d, stderr %q", code, errOut)
	}
	var tasks []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("tasks", "list", "--json")), &tasks); err != nil || len(tasks) != 1 {
		t.Errorf("tasks after a failed submit: %d, %v", len(tasks), err)
	}
}

func TestSubmitRepo(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	id := e.submit("--repo", "https://github.com/org/repo.git", "--branch", "dev", "--commit", "abc123",
		"--script", "src/run.py", "--cwd", "src", "--binary", "python3.11", "--name", "from repo")
	s := e.task(id).Script
	want := map[string]any{"repository": "https://github.com/org/repo.git", "branch": "dev", "version_num": "abc123",
		"entry_point": "src/run.py", "working_dir": "src", "binary": "python3.11", "diff": ""}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("script.%s = %v, want %v", k, s[k], v)
		}
	}
}

func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeFile(t, filepath.Join(dir, "ok.py"), "print(1)\n")
	conf := filepath.Join(dir, "no-server.conf")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--name", "x"}, 2, "--script is required"},
		{[]string{"--script", script, "--args", "novalue"}, 2, `invalid --args item "novalue"`},
		{[]string{"--script", script, "--args"}, 2, "--args needs at least one value"},
		{[]string{"--script", script, "--task-type", "nonsense"}, 2, "invalid --task-type"},
		{[]string{"--script", script, "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"--script", script, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--script", filepath.Join(dir, "missing.py")}, 1, "missing.py does not exist"},
		{[]string{"--script", dir}, 1, "is a folder"},
		{[]string{"--script", script, "--requirements", filepath.Join(dir, "nope.txt")}, 1, "reading --requirements"},
	} {
		var out, errOut strings.Builder
		code := Main(append([]string{"--config-file", conf, "submit"}, tc.args...), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) || out.Len() != 0 {
			t.Errorf("submit %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}

func TestCmdFlagsLists(t *testing.T) {
	t.Parallel()
	var args, tags []string
	f := newFlags("x", "")
	f.list(&args, "args", "")
	f.list(&tags, "tags", "")
	name := f.fs.String("docker_args", "", "")
	js := f.fs.Bool("json", false, "")
	pos, err := f.parse([]string{"ID", "--args", "a=1", "b=-2", "--tags=t1", "t2", "--docker-args", "-e X=1",
		"--args", "c=3", "-json", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args, []string{"a=1", "b=-2", "c=3"}) || !slices.Equal(tags, []string{"t1", "t2"}) ||
		*name != "-e X=1" || !*js || !slices.Equal(pos, []string{"ID", "--not-a-flag"}) {
		t.Errorf("args %q tags %q docker_args %q json %v pos %q", args, tags, *name, *js, pos)
	}
	if _, err := f.parse([]string{"--docker_args"}); err == nil {
		t.Error("a value flag without a value parsed")
	}
}
