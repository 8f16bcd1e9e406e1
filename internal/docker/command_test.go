package docker

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRunSpecArgv(t *testing.T) {
	t.Parallel()
	args, err := ParseArgs([]string{"-e", "A=1", "--ipc=host"})
	if err != nil {
		t.Fatal(err)
	}
	s := RunSpec{Image: "img:1", Args: args, GPUs: GPUs{Visible: "0,1"}, Labels: []string{"clearml-worker-id=w"},
		Env: []string{"CLEARML_TASK_ID=t"}, PassEnv: []string{"CLEARML_AGENT_GIT_PASS"},
		Mounts: []Mount{{Host: "/bin/agent", Container: AgentBinary, ReadOnly: true}, {Host: "/c", Container: "/d"}},
		Name:   "clearml-t", HostNetwork: true, Command: []string{"container-run", "--", "x"}}
	want := []string{"docker", "run", `--gpus="device=0,1"`, "--env=A=1", "--ipc=host", "--label=clearml-worker-id=w", "--network=host",
		"--env=NVIDIA_VISIBLE_DEVICES=0,1", "--env=CLEARML_TASK_ID=t", "--env=CLEARML_AGENT_GIT_PASS",
		"--volume=/bin/agent:/opt/clearml-agent/clearml-agent:ro", "--volume=/c:/d", "--name=clearml-t", "--rm",
		"--entrypoint=/opt/clearml-agent/clearml-agent", "img:1", "container-run", "--", "x"}
	if got := s.Argv("docker"); !reflect.DeepEqual(got, want) {
		t.Fatalf("argv =\n%q\nwant\n%q", got, want)
	}
	// The user's --network and --name win over the agent's defaults.
	own, _ := ParseArgs([]string{"--network=bridge", "--name=mine"})
	s.Args = own
	got := strings.Join(s.Argv("docker"), " ")
	if strings.Contains(got, "--network=host") || strings.Contains(got, "--name=clearml-t") || !strings.Contains(got, "--name=mine") {
		t.Fatalf("user's --network/--name not kept: %s", got)
	}
}

func TestGPUFlag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		g             GPUs
		flag, visible string
	}{
		{GPUs{Visible: "", HostHasGPUs: true}, "--gpus=all", "all"},
		{GPUs{Visible: "all", HostHasGPUs: true}, "--gpus=all", "all"},
		{GPUs{Visible: "all", HostHasGPUs: false}, "", "all"},
		{GPUs{Visible: "none", HostHasGPUs: true}, "", "none"},
		{GPUs{Visible: "0"}, `--gpus="device=0"`, "0"},
		{GPUs{Visible: "0.1,1"}, `--gpus="device=0:1,1"`, "0:1,1"},
		{GPUs{Visible: "2,3", SkipFlag: true}, "", "2,3"},
		{GPUs{Visible: "all", HostHasGPUs: true, SkipFlag: true}, "", "all"},
		{GPUs{Visible: "1", AgentSet: true}, "", "1"},
	}
	for _, c := range cases {
		if flag, vis := c.g.flag(); flag != c.flag || vis != c.visible {
			t.Errorf("%+v: flag %q visible %q, want %q %q", c.g, flag, vis, c.flag, c.visible)
		}
	}
}

func TestContainerName(t *testing.T) {
	t.Parallel()
	fields := map[string]string{"task_id": "abc123", "worker_id": "host:gpu0", "rand_string": "0123456789"}
	cases := map[string]string{
		"clearml-{task_id}-{rand_string:.4}": "clearml-abc123-0123",
		"w-{worker_id}":                      "w-host_gpu0",
		"plain":                              "plain",
	}
	for format, want := range cases {
		if got, err := ContainerName(format, fields); err != nil || got != want {
			t.Errorf("%q = %q %v, want %q", format, got, err, want)
		}
	}
	for _, bad := range []string{"{unknown}", "x-{task_id", "-{task_id}", "{rand_string:.0}"} {
		if _, err := ContainerName(bad, fields); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIsLoopbackServer(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]bool{"http://127.0.0.1:8008": true, "http://localhost:8008": true, "http://[::1]:8008": true,
		"https://api.clear.ml": false, "http://10.0.0.5:8008": false, "::bad": false} {
		if got := IsLoopbackServer(url); got != want {
			t.Errorf("%s = %v", url, got)
		}
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	m := Masker{Keys: []string{"CUSTOM_VAR"}, Secrets: []string{"literal-secret"}}
	in := []string{"docker", "run", "--env=AWS_SECRET_ACCESS_KEY=abc", "--env=HF_TOKEN=hf_x", "--env=DB_PASSWORD=pw",
		"--env=CUSTOM_VAR=c", "--env=PLAIN=ok", "--env=CLEARML_AGENT_GIT_PASS", "--env=URL=https://u:p4ss@host/x",
		"--label=x=literal-secret", "--env=EMPTY_TOKEN="}
	want := []string{"docker", "run", "--env=AWS_SECRET_ACCESS_KEY=********", "--env=HF_TOKEN=********", "--env=DB_PASSWORD=********",
		"--env=CUSTOM_VAR=********", "--env=PLAIN=ok", "--env=CLEARML_AGENT_GIT_PASS", "--env=URL=https://u:********@host/x",
		"--label=x=********", "--env=EMPTY_TOKEN="}
	if got := m.Mask(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("masked =\n%q\nwant\n%q", got, want)
	}
	off := Masker{Disabled: true, Secrets: []string{"literal-secret"}}
	if got := off.Mask([]string{"--env=HF_TOKEN=hf_x", "literal-secret"}); got[0] != "--env=HF_TOKEN=hf_x" || got[1] != Hidden {
		t.Fatalf("disabled masking = %q", got)
	}
}

func TestContainerConfig(t *testing.T) {
	t.Parallel()
	tree := map[string]any{
		"api":   map[string]any{"api_server": "http://h:8008", "credentials": map[string]any{"access_key": "A", "secret_key": "S"}},
		"agent": map[string]any{"git_pass": "gp", "git_user": "gu", "default_python": "3.10", "venvs_cache": map[string]any{"path": "~/v"}},
		"env":   map[string]any{"X": "1"},
	}
	out, err := ContainerConfig(tree, ConfOptions{Mounts: DefaultInternalMounts(), VCSCache: true, VenvsCache: true, SystemSitePackages: true})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	agent := got["agent"].(map[string]any)
	if agent["git_pass"] != nil || agent["git_user"] != nil || agent["default_python"] != "" || got["env"] != nil {
		t.Errorf("container config keeps host-only values: %s", out)
	}
	if agent["venvs_cache"].(map[string]any)["path"] != "/root/.clearml/venvs-cache" || agent["vcs_cache"].(map[string]any)["path"] != "/root/.clearml/vcs-cache" {
		t.Errorf("cache paths not the container's: %s", out)
	}
	if got["api"].(map[string]any)["credentials"] == nil {
		t.Errorf("credentials removed without --use-owner-token")
	}
	if tree["agent"].(map[string]any)["git_pass"] != "gp" {
		t.Errorf("the daemon's own tree was changed")
	}
	owner, _ := ContainerConfig(tree, ConfOptions{Mounts: DefaultInternalMounts(), OwnerToken: true})
	if strings.Contains(string(owner), `"S"`) || strings.Contains(string(owner), "gp") {
		t.Errorf("owner-token config holds the agent's secrets: %s", owner)
	}
}

// The set-up script is valid for sh and for bash, and with a bare PATH it
// names what is missing instead of failing.
func TestInitScriptRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := InitScript(InitOptions{OpenCVLibs: true, Extra: []string{"export FROM_EXTRA=1", "# a comment", ""},
		TaskScript: "export FROM_TASK=2\n\n# note\necho task-setup"})
	path := filepath.Join(dir, "init.sh")
	os.WriteFile(path, []byte(script), 0o644)
	for _, shell := range []string{"sh", "bash"} {
		sh, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Fatalf("%s -n: %v\n%s\n%s", shell, err, out, script)
		}
		empty := t.TempDir()
		cmd := exec.Command(sh, "-c", ". "+path+"; echo FROM_EXTRA=$FROM_EXTRA FROM_TASK=$FROM_TASK")
		cmd.Env = []string{"PATH=" + empty, "HOME=" + dir}
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "task-setup") || !strings.Contains(string(out), "FROM_EXTRA=1 FROM_TASK=2") ||
			!strings.Contains(string(out), "has no apt-get") {
			t.Errorf("%s run:\n%s", shell, out)
		}
	}
	if strings.Contains(script, "# note") || strings.Contains(script, "# a comment") {
		t.Errorf("comment lines kept")
	}
	if strings.Contains(InitScript(InitOptions{Init: []string{"echo custom"}}), "apt-get") {
		t.Errorf("docker_init_bash_script did not replace the built-in steps")
	}
}

func TestDockerCause(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"Unable to find image 'x:1' locally\ndocker: Error response from daemon: pull access denied for x, repository does not exist.\nSee 'docker run --help'.\n",
			"Error response from daemon: pull access denied for x, repository does not exist."},
		{"unknown flag: --bogus\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n", "unknown flag: --bogus"},
		{"", "docker run said nothing (exit code 125)"},
	} {
		if got := dockerCause(tc.out); got != tc.want {
			t.Errorf("dockerCause(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}
