package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// lostAfter is the reattach timeout of these tests' daemons.
const lostAfter = "2"

// A task whose daemon died and that no daemon took back within
// agent.reattach_timeout_sec is stopped by its supervisor and reported at
// once: failed, "agent lost", with its folder removed. Before, it stayed
// in_progress until the server's watchdog (2 h), and a later daemon
// reported it stopped, "user abort"; its folder stayed in /tmp.
func TestSupervisorReportsAgentLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	env := append(e.daemonEnv(), "CLEARML_AGENT__AGENT__REATTACH_TIMEOUT_SEC="+lostAfter)
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5", "--queue", "default")
	id := e.task("orphan", "", "import os, time\nprint('cwd', os.getcwd(), flush=True)\ntime.sleep(600)\n")
	e.logRunOnFailure(t, id, d)
	waitLog(t, e, id, "cwd ", 60*time.Second)
	var folder string
	for _, l := range e.logLines(id) {
		if rest, ok := strings.CutPrefix(l, "cwd "); ok {
			folder = strings.TrimSpace(rest)
		}
	}
	if _, err := os.Stat(folder); err != nil {
		t.Fatalf("the task's folder %q: %v", folder, err)
	}
	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	// No daemon comes back: the supervisor reports.
	tk := e.waitStatus(id, 60*time.Second, "failed", "stopped", "completed")
	if tk.Status != "failed" || tk.StatusReason != "agent lost" {
		t.Fatalf("task = %s %q, want failed \"agent lost\"", tk.Status, tk.StatusReason)
	}
	if !testwait.For(20*time.Second, func() bool { return len(processesOf(id)) == 0 }) {
		t.Fatalf("processes of the lost task remain: %v", processesOf(id))
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Errorf("the lost task's folder %s is still there (%v)", folder, err)
	}
}

// The same in docker mode: the container goes too.
func TestDockerSupervisorReportsAgentLost(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Busybox(t)
	d := de.daemon([]string{"CLEARML_AGENT__AGENT__REATTACH_TIMEOUT_SEC=" + lostAfter}, "", "--queue", "default", "--cpu-only", "--docker", image)
	// The marker is computed by the task's shell: the docker command line
	// the daemon logs before the container runs holds the script's text
	// (and this test's name, "...SupervisorReports...", in its paths), so
	// waiting for a word of it could kill the daemon before the task ran.
	id := de.shellTask("orphan in docker", "echo UP_$((20+22))\nsleep 600\n", nil)
	de.logRunOnFailure(t, id, d)
	waitLog(t, de.env, id, "UP_42", 90*time.Second)
	d.Signal(syscall.SIGKILL)
	d.Wait(10 * time.Second)
	tk := de.waitStatus(id, 90*time.Second, "failed", "stopped", "completed")
	if tk.Status != "failed" || tk.StatusReason != "agent lost" {
		t.Fatalf("task = %s %q, want failed \"agent lost\"", tk.Status, tk.StatusReason)
	}
	de.noContainersLeft()
}

// logRunOnFailure logs, should the test fail, what the task's run folder
// holds (the supervisor's log, the task's output, its exit): what the
// supervisor did after its daemon died; and the daemon's own log and the
// task's log on the server: what came before.
func (e *env) logRunOnFailure(t *testing.T, id string, d *testbin.Process) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		out := d.Output()
		if len(out) > 8000 {
			out = out[len(out)-8000:]
		}
		t.Logf("the daemon's log (its end):\n%s", out)
		t.Logf("the task's log on the server:\n%s", strings.Join(e.logLines(id), "\n"))
		files, _ := filepath.Glob(filepath.Join(e.dir, "cache", "clearml-agent", "runs", "*", id, "run", "*"))
		if len(files) == 0 {
			t.Logf("the run folder of task %s is gone", id)
		}
		for _, f := range files {
			data, _ := os.ReadFile(f)
			if len(data) > 4000 {
				data = data[len(data)-4000:]
			}
			t.Logf("%s:\n%s", f, data)
		}
	})
}
