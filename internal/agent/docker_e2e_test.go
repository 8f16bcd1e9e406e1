package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// dockerEnv is an end-to-end setting for docker mode: a server, and
// daemons with a worker id of their own, so that the containers of one
// test are found (and any left behind removed) by their label.
type dockerEnv struct {
	*env
	worker string
}

func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	dockertest.Require(t)
	b := make([]byte, 4)
	rand.Read(b)
	de := &dockerEnv{env: newEnv(t), worker: "dockere2e-" + hex.EncodeToString(b)}
	dockertest.RemoveLabelled(t, "clearml-parent-worker-id="+de.worker)
	return de
}

// daemon starts a docker-mode daemon; conf lines are appended to the
// server's client configuration.
func (de *dockerEnv) daemon(env []string, conf string, args ...string) *testbin.Process {
	de.t.Helper()
	path := de.srv.ConfigPath
	if conf != "" {
		base, err := os.ReadFile(de.srv.ConfigPath)
		if err != nil {
			de.t.Fatal(err)
		}
		path = filepath.Join(de.dir, "docker-"+hex.EncodeToString([]byte(de.worker))[:8]+".conf")
		if err := os.WriteFile(path, append(base, []byte("\n"+conf+"\n")...), 0o600); err != nil {
			de.t.Fatal(err)
		}
	}
	env = append(append(de.daemonEnv(), "CLEARML_WORKER_ID="+de.worker,
		"CLEARML_AGENT__AGENT__DOCKER_INSTALL_OPENCV_LIBS=false"), env...)
	argv := append([]string{"--config-file", path, "daemon", "--foreground", "--polling-interval", "0.5"}, args...)
	return testbin.Start(de.t, env, argv...)
}

// shellTask creates and enqueues a task whose script is a shell script,
// with a container section.
func (de *dockerEnv) shellTask(name, script string, container map[string]string) string {
	de.t.Helper()
	ctx := context.Background()
	body := map[string]any{"name": name, "type": "training",
		"script": map[string]any{"binary": "/bin/sh", "entry_point": "task.sh", "diff": script}}
	if container != nil {
		body["container"] = container
	}
	var created api.IDResponse
	if err := de.api.Call(ctx, "", "tasks.create", body, &created, apiclient.Default); err != nil {
		de.t.Fatal(err)
	}
	if err := de.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		de.t.Fatal(err)
	}
	return created.ID
}

func (de *dockerEnv) log(id string) string { return strings.Join(de.logLines(id), "\n") }

// noContainersLeft fails when a container of this test's daemons remains
// (after the time docker takes to remove the last ones).
func (de *dockerEnv) noContainersLeft() {
	de.t.Helper()
	var left []string
	if !testwait.For(60*time.Second, func() bool {
		left = dockertest.Containers(de.t, "clearml-parent-worker-id="+de.worker)
		return len(left) == 0
	}) {
		de.t.Fatalf("containers left behind: %v", left)
	}
}

func TestDockerTaskRunsInContainer(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	// The daemon's ~/.ssh reaches the container as a copy.
	ssh := filepath.Join(de.dir, "home", ".ssh")
	os.MkdirAll(ssh, 0o700)
	os.WriteFile(filepath.Join(ssh, "known_hosts"), []byte("git.example.com ssh-ed25519 AAAAtest\n"), 0o600)
	d := de.daemon(nil, "", "--queue", "default", "--cpu-only", "--docker", image)
	id := de.shellTask("in a container", `echo "inside worker=$CLEARML_WORKER_ID task=$CLEARML_TASK_ID image=$CLEARML_DOCKER_IMAGE"
i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done
echo "pid1: $(tr '\0' ' ' < /proc/1/cmdline)"
echo "ssh: $(cat $HOME/.ssh/known_hosts)"
`, nil)
	tk := de.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	log := de.log(id)
	if tk.Status != "completed" || tk.StatusReason != "worker execution done" {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	for _, want := range []string{
		"inside worker=" + de.worker + " task=" + id + " image=" + image,
		"Running Task " + id + " inside default docker: " + image,
		"--label=clearml-parent-worker-id=" + de.worker, "--entrypoint=/opt/clearml-agent/clearml-agent",
		"pid1: /opt/clearml-agent/clearml-agent container-run", // PID 1 is the agent's own binary
		"ssh: git.example.com ssh-ed25519 AAAAtest",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	var lines []string
	for _, l := range de.logLines(id) {
		if strings.HasPrefix(l, "line ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 100 || lines[0] != "line 0" || lines[99] != "line 99" {
		t.Errorf("task lines = %d (%v...)", len(lines), lines[:min(len(lines), 3)])
	}
	// The default image was written back to the task.
	if tk.Container["image"] != image {
		t.Errorf("container written back = %v", tk.Container)
	}
	if t.Failed() {
		t.Log(log)
	}
	de.noContainersLeft()
}

func TestDockerPythonTaskWithRequirement(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Python(t)
	links := wheels(t)
	// The wheel folder is mounted at the same path, so PIP_FIND_LINKS
	// (passed into the container by name) works inside too.
	conf := `agent.extra_docker_arguments: ["-v", "` + links + `:` + links + `:ro"]`
	d := de.daemon([]string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + links}, conf, "--queue", "default", "--cpu-only", "--docker", image)
	ctx := context.Background()
	var created api.IDResponse
	err := de.api.Call(ctx, "", "tasks.create", map[string]any{"name": "py in docker", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "task.py",
			"diff":         "import sys, mathlib\nprint('tripled', mathlib.triple(14), 'on', sys.version.split()[0])\n",
			"requirements": map[string]any{"pip": "mathlib==1.0\n"}}}, &created, apiclient.Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := de.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := de.waitStatus(created.ID, 240*time.Second, "completed", "failed", "stopped")
	log := de.log(created.ID)
	if tk.Status != "completed" || !strings.Contains(log, "tripled 42 on 3.11") {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	reqs, _ := tk.Script["requirements"].(map[string]any)
	if pip, _ := reqs["pip"].(string); !strings.Contains(pip, "mathlib==1.0") {
		t.Fatalf("installed packages written back = %v", reqs)
	}
	de.noContainersLeft()
}

// User arguments reach the container as the docker CLI reads them; a
// protected switch the agent set wins over the task's; a filtered one is
// dropped with a note.
func TestDockerArgumentsReachContainer(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "input.txt"), []byte("from the host\n"), 0o644)
	conf := `agent.extra_docker_arguments: ["--network", "host", "-e", "FROM_AGENT=agent value"]
agent.docker_args_filters: ["^--env", "^-e", "^--volume", "^--shm-size", "^--network", "^--hostname"]`
	d := de.daemon(nil, conf, "--queue", "default", "--cpu-only", "--docker", image)
	id := de.shellTask("arguments", `echo "K=$K"
echo "FROM_AGENT=$FROM_AGENT"
cat /data/input.txt
df -k /dev/shm | tail -1
grep CapEff /proc/self/status
hostname
`, map[string]string{"image": image,
		"arguments": `-e K=V --env="SPACED=a b" -v ` + data + `:/data:ro --shm-size=300m --network none --privileged --hostname=given-host`})
	tk := de.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	log := de.log(id)
	if tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	for _, want := range []string{
		"K=V", "FROM_AGENT=agent value", "from the host", "given-host",
		"task docker argument --network=none replaced by --network=host (protected switch)",
		"task docker argument --privileged dropped (not allowed by agent.docker_args_filters)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// 300m of shared memory, in 1K blocks.
	if !strings.Contains(log, " 307200 ") {
		t.Errorf("--shm-size=300m did not reach the container")
	}
	// Not privileged: the default capability set, not all of them.
	for _, l := range de.logLines(id) {
		if strings.HasPrefix(l, "CapEff:") && strings.HasSuffix(l, "ffffffff") {
			t.Errorf("the filtered --privileged was applied: %s", l)
		}
	}
	if t.Failed() {
		t.Log(log)
	}
	de.noContainersLeft()
}

// Bad docker input fails the task with the reason, before anything runs,
// and the daemon goes on with the next task.
func TestDockerBadArgumentsFailTheTask(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	d := de.daemon(nil, "", "--queue", "default", "--cpu-only", "--docker", image)
	cases := []struct {
		container map[string]string
		reason    string
	}{
		{map[string]string{"image": image, "arguments": "--bogus-switch 1"}, `unknown docker run option "--bogus-switch"`},
		{map[string]string{"image": image, "arguments": "--restart always"}, "docker option --restart is not allowed"},
		{map[string]string{"image": image, "arguments": "-e"}, "docker option -e needs a value"},
		{map[string]string{"image": image, "arguments": `--env ""`}, "docker option --env has an empty value"},
		{map[string]string{"image": image, "arguments": "some-image-name"}, `unexpected word "some-image-name"`},
		{map[string]string{"image": "Not/A Valid:Image!"}, "invalid docker image reference"},
		{map[string]string{"image": image, "arguments": `-e "unterminated`}, "no closing quotation"},
	}
	var ids []string
	for _, c := range cases {
		ids = append(ids, de.shellTask("bad", "echo must not run\n", c.container))
	}
	good := de.shellTask("good", "echo fine\n", nil)
	for i, id := range ids {
		tk := de.waitStatus(id, 60*time.Second, "completed", "failed", "stopped")
		if tk.Status != "failed" || !strings.Contains(tk.StatusReason, cases[i].reason) {
			t.Errorf("case %d %v: task = %s %q, want failed with %q", i, cases[i].container, tk.Status, tk.StatusReason, cases[i].reason)
		}
		if strings.Contains(de.log(id), "must not run") {
			t.Errorf("case %d: the task ran", i)
		}
	}
	if tk := de.waitStatus(good, 60*time.Second, "completed", "failed", "stopped"); tk.Status != "completed" {
		t.Fatalf("the daemon did not go on: %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	de.noContainersLeft()
}

// An abort stops the container with the grace period: the task's process
// gets SIGTERM (its trap runs), and the container is removed.
func TestDockerAbortStopsContainer(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	d := de.daemon([]string{"CLEARML_AGENT__AGENT__ABORT_GRACE_PERIOD_SEC=5"}, "", "--queue", "default", "--cpu-only", "--docker", image)
	id := de.shellTask("abort me", `trap 'echo "got TERM"; exit 0' TERM
sleep 300 &
echo started
while true; do sleep 0.2; done
`, nil)
	waitLog(t, de.env, id, "started", 60*time.Second)
	if len(dockertest.Containers(t, "clearml-task-id="+id)) != 1 {
		t.Fatalf("no container for the running task")
	}
	start := time.Now()
	if err := de.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": id}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := de.waitStatus(id, 60*time.Second, "stopped", "failed", "completed")
	if tk.Status != "stopped" || tk.StatusReason != "task was stopped by tasks.stop" {
		t.Fatalf("aborted task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	t.Logf("abort took %v", time.Since(start))
	if !strings.Contains(de.log(id), "got TERM") {
		t.Errorf("the task's process did not get SIGTERM:\n%s", de.log(id))
	}
	de.noContainersLeft()
}

// --stop with a container running: the task ends stopped ("agent
// shutdown") and the container is gone.
func TestDockerStopDaemonWithContainerRunning(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	args := []string{"--queue", "default", "--cpu-only", "--docker", image}
	d := de.daemon(nil, "", args...)
	id := de.shellTask("long", "echo started\nsleep 300\n", nil)
	waitLog(t, de.env, id, "started", 60*time.Second)
	stopEnv := append(de.daemonEnv(), "CLEARML_WORKER_ID="+de.worker)
	stop := testbin.Start(t, stopEnv, append([]string{"--config-file", de.srv.ConfigPath, "daemon", "--stop"}, args...)...)
	if code := stop.Wait(90 * time.Second); code != 0 {
		t.Fatalf("--stop exit %d\n%s", code, stop.Output())
	}
	if code := d.Wait(60 * time.Second); code < 0 {
		t.Fatalf("daemon still running after --stop\n%s", d.Output())
	}
	tk := de.get(id)
	if tk.Status != "stopped" || tk.StatusReason != "agent shutdown" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	de.noContainersLeft()
}

// The command line in the task log hides secrets: secret -e values, the
// git password (passed by name only) and the API secret key.
func TestDockerCommandLineMasked(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	conf := `agent.extra_docker_arguments: ["-e", "MY_TOKEN=tok-5up3r-s3cret", "-e", "PLAIN=visible-value"]`
	d := de.daemon([]string{"CLEARML_AGENT_GIT_PASS=git-pa55-word", "CLEARML_AGENT_GIT_USER=gituser"}, conf,
		"--queue", "default", "--cpu-only", "--docker", image)
	id := de.shellTask("masked", `echo "token length ${#MY_TOKEN}"; echo "git user $CLEARML_AGENT_GIT_USER"`, nil)
	tk := de.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	log := de.log(id)
	if tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	var executing string
	for _, l := range de.logLines(id) {
		if strings.HasPrefix(l, "Executing: [") {
			executing = l
		}
	}
	for _, want := range []string{"--env=MY_TOKEN=********", "--env=PLAIN=visible-value", "--env=CLEARML_AGENT_GIT_PASS "} {
		if !strings.Contains(executing+" ", want) {
			t.Errorf("command line lacks %q: %s", want, executing)
		}
	}
	for _, secret := range []string{"tok-5up3r-s3cret", "git-pa55-word", de.srv.SecretKey} {
		if strings.Contains(log, secret) || strings.Contains(d.Output(), secret) {
			t.Errorf("secret %q appears in the task log or the daemon output", secret)
		}
	}
	// The values did reach the container.
	if !strings.Contains(log, "token length 16") || !strings.Contains(log, "git user gituser") {
		t.Errorf("secret variables did not reach the container:\n%s", log)
	}
	de.noContainersLeft()
}

// waitLog waits until the task's log holds want.
func waitLog(t *testing.T, e *env, id, want string, d time.Duration) {
	t.Helper()
	if !testwait.For(d, func() bool { return strings.Contains(strings.Join(e.logLines(id), "\n"), want) }) {
		t.Fatalf("task log never showed %q:\n%s", want, strings.Join(e.logLines(id), "\n"))
	}
}

// Services mode in docker: ten tasks, each in its own container, at most
// four at once (each counts the others' markers in a shared folder), each
// as its own worker; one aborted while the others complete.
func TestDockerServicesMode(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	shared := t.TempDir()
	os.MkdirAll(filepath.Join(shared, "running"), 0o777)
	conf := `agent.extra_docker_arguments: ["-v", "` + shared + `:/shared"]`
	d := de.daemon(nil, conf, "--queue", "default", "--services-mode", "4", "--docker", image)
	script := func(secs int) string {
		return fmt.Sprintf(`touch /shared/running/$CLEARML_TASK_ID
echo "$(ls /shared/running | wc -l)" >> /shared/counts
echo "running as $CLEARML_WORKER_ID service=$CLEARML_AGENT_SERVICE_TASK"
trap 'rm -f /shared/running/$CLEARML_TASK_ID; exit 143' TERM
sleep %d & wait
rm -f /shared/running/$CLEARML_TASK_ID
`, secs)
	}
	var ids []string
	for i := range 10 {
		secs := 2
		if i == 0 {
			secs = 120
		}
		ids = append(ids, de.shellTask(fmt.Sprintf("svc %d", i), script(secs), nil))
	}
	waitLog(t, de.env, ids[0], "running as", 60*time.Second)
	// Task 0 is stopped once another one runs beside it: two at once at
	// least, however slowly the containers start.
	waitLog(t, de.env, ids[1], "running as", 120*time.Second)
	maxContainers := 0
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(150 * time.Millisecond):
			}
			maxContainers = max(maxContainers, len(dockertest.Containers(t, "clearml-parent-worker-id="+de.worker)))
		}
	})
	if err := de.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": ids[0]}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		tk := de.waitStatus(id, 120*time.Second, "completed", "failed", "stopped")
		want := "completed"
		if i == 0 {
			want = "stopped"
		}
		if tk.Status != want {
			t.Errorf("task %d = %s %q, want %s", i, tk.Status, tk.StatusReason, want)
		}
		if log := de.log(id); !strings.Contains(log, "running as "+de.worker+":service:"+id+" service=1") {
			t.Errorf("task %d did not run as its own service worker:\n%s", i, log)
		}
	}
	close(stopSampling)
	wg.Wait()
	raw, _ := os.ReadFile(filepath.Join(shared, "counts"))
	counts := strings.Fields(string(raw))
	peak := 0
	for _, c := range counts {
		n, _ := strconv.Atoi(c)
		peak = max(peak, n)
	}
	if len(counts) != 10 || peak > 4 || peak < 2 {
		t.Errorf("tasks saw %v others running (cap 4)", counts)
	}
	if maxContainers > 4 {
		t.Errorf("%d containers at once (cap 4)", maxContainers)
	}
	if t.Failed() {
		t.Log(d.Output())
	}
	de.noContainersLeft()
}

// A docker-mode daemon killed with SIGKILL while a container runs, and
// started again: the container ran on; the new daemon takes the task back,
// its log continues exactly once, and no container is left.
func TestDockerDaemonKilledTaskTakenBack(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	args := []string{"--queue", "default", "--cpu-only", "--docker", image}
	// Half-way, the task waits for the test (a file in a shared folder):
	// it cannot end before its daemon is killed, however late the test
	// sees its lines.
	shared := t.TempDir()
	conf := `agent.extra_docker_arguments: ["-v", "` + shared + `:/shared"]`
	first := de.daemon(nil, conf, args...)
	id := de.shellTask("survivor", `i=0; while [ $i -lt 300 ]; do
  if [ $i -eq 150 ]; then while [ ! -e /shared/release ]; do sleep 0.05; done; fi
  echo "n $i"; i=$((i+1)); sleep 0.01
done
`, nil)
	waitLog(t, de.env, id, "n 30", 60*time.Second)
	first.Signal(syscall.SIGKILL)
	first.Wait(60 * time.Second)
	if pidAlive(first.Pid()) {
		t.Fatal("the daemon did not die of SIGKILL")
	}
	if len(dockertest.Containers(t, "clearml-task-id="+id)) != 1 {
		t.Fatal("the container did not outlive the daemon")
	}
	if err := os.WriteFile(filepath.Join(shared, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := de.daemon(nil, conf, args...)
	tk := de.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	if tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, second.Output())
	}
	de.checkExactlyOnce(t, id, 300)
	de.noContainersLeft()
}
