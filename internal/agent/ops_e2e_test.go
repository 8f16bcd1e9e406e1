package agent_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// run starts the binary with the env's daemon environment and waits for it.
func (e *env) run(args ...string) (int, string) {
	e.t.Helper()
	p := testbin.Start(e.t, e.daemonEnv(), append([]string{"--config-file", e.srv.ConfigPath}, args...)...)
	code := p.Wait(90 * time.Second)
	return code, p.Output()
}

// draining says whether the env's daemon with pid took a stop signal (it
// marks its instance file, in its TMPDIR).
func (e *env) draining(pid int) bool {
	for _, r := range agent.Running(filepath.Join(e.dir, "tmp")) {
		if r.PID == pid {
			return r.Draining
		}
	}
	return false
}

func pidAlive(pid int) bool {
	return processAlive(strconv.Itoa(pid))
}

// TestDetachedDaemonStoppedWhileRunning: `daemon --detached` returns at once
// with the pid and log file; `daemon --stop` with the same arguments stops
// it while a task runs: the task ends stopped ("agent shutdown") and none
// of its processes is left.
func TestDetachedDaemonStoppedWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code, out := e.run("daemon", "--queue", "ops-queue", "--create-queue", "--detached", "--polling-interval", "0.5")
	m := regexp.MustCompile(`\(pid (\d+)\), writing stdout/stderr to (\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("detached start: exit %d\n%s", code, out)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// The command returned while the daemon it started runs on.
	if !pidAlive(pid) {
		log, _ := os.ReadFile(m[2])
		t.Fatalf("the detached daemon %d is not running\n%s", pid, log)
	}
	pidFile := filepath.Join(e.dir, "pids")
	id := e.task("stopped by --stop", "ops-queue", fmt.Sprintf(
		"import subprocess, time\np = subprocess.Popen(['sleep', '300'])\nopen(%q, 'w').write(str(p.pid))\nprint('working', flush=True)\ntime.sleep(300)\n", pidFile))
	if !testwait.For(60*time.Second, func() bool { return strings.Contains(strings.Join(e.logLines(id), "\n"), "working") }) {
		log, _ := os.ReadFile(m[2])
		t.Fatalf("task did not start under the detached daemon\n%s", log)
	}
	code, out = e.run("daemon", "--queue", "ops-queue", "--create-queue", "--stop")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("pid=%d", pid)) {
		t.Fatalf("--stop: exit %d\n%s", code, out)
	}
	if pidAlive(pid) {
		t.Fatalf("daemon %d still running after --stop", pid)
	}
	tk := e.get(id)
	if tk.Status != "stopped" || tk.StatusReason != "agent shutdown" {
		t.Fatalf("task after --stop = %s %q", tk.Status, tk.StatusReason)
	}
	child, _ := os.ReadFile(pidFile)
	if processAlive(strings.TrimSpace(string(child))) {
		t.Fatalf("task child %s survived", child)
	}
}

// TestStopOnlyTheMatchingDaemon: two daemons with different queues; --stop
// with one's arguments stops that one only; --stop with nothing matching
// exits 1.
func TestStopOnlyTheMatchingDaemon(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.daemon("--queue", "queue-a", "--create-queue")
	b := e.daemon("--queue", "queue-b", "--create-queue")
	for _, p := range []*testbin.Process{a, b} {
		if !testwait.For(60*time.Second, func() bool { return strings.Contains(p.Output(), "Listening to queues") }) {
			t.Fatalf("daemon did not start\n%s", p.Output())
		}
	}
	// a still serves: it takes and completes a task, and it was never
	// asked to stop (a daemon that was takes no new task and marks itself
	// draining at once).
	stillServes := func(after string) {
		t.Helper()
		id := e.task("for daemon a", "queue-a", "print('ok')\n")
		if tk := e.waitStatus(id, 60*time.Second, "completed", "failed", "stopped"); tk.Status != "completed" {
			t.Fatalf("after %s, daemon a's task = %s %q\n%s", after, tk.Status, tk.StatusReason, a.Output())
		}
		if c := a.Wait(0); c != -1 || e.draining(a.Pid()) {
			t.Fatalf("daemon a was stopped by %s (exit %d)\n%s", after, c, a.Output())
		}
	}
	code, out := e.run("daemon", "--queue", "queue-b", "--stop")
	if code != 0 {
		t.Fatalf("--stop: exit %d\n%s", code, out)
	}
	if c := b.Wait(30 * time.Second); c != 0 {
		t.Fatalf("daemon b exit %d", c)
	}
	stillServes("the --stop of daemon b")
	code, out = e.run("daemon", "--queue", "queue-c", "--stop")
	if code != 1 || !strings.Contains(out, "Could not find a running clearml-agent instance") {
		t.Fatalf("--stop without a match: exit %d\n%s", code, out)
	}
	stillServes("a non-matching --stop")
}

// TestMetricsEndpoint scrapes the daemon's /metrics (parsed with the
// Prometheus text parser) and /healthz after it ran a task.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := freeAddr(t)
	env := append(e.daemonEnv(), "CLEARML_AGENT__AGENT__METRICS_ADDRESS="+addr)
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
	id := e.task("measured", "", "print('x' * 100)\n")
	e.waitStatus(id, 60*time.Second, "completed", "failed")
	var fams map[string]*dto.MetricFamily
	var err error
	if !testwait.For(60*time.Second, func() bool {
		var resp *http.Response
		if resp, err = http.Get("http://" + addr + "/metrics"); err != nil {
			return false
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		if fams, err = p.TextToMetricFamilies(resp.Body); err != nil {
			t.Fatalf("parsing /metrics: %v", err)
		}
		f := fams["clearml_agent_tasks_total"]
		return f != nil && len(f.Metric) > 0
	}) {
		t.Fatalf("no task metrics: %v\n%s", err, d.Output())
	}
	var completed float64
	for _, m := range fams["clearml_agent_tasks_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "status" && l.GetValue() == "completed" {
				completed = m.Counter.GetValue()
			}
		}
	}
	if completed != 1 || fams["clearml_agent_pickups_total"].Metric[0].Counter.GetValue() != 1 ||
		fams["clearml_agent_log_bytes_total"].Metric[0].Counter.GetValue() < 100 {
		t.Fatalf("metrics after one task: completed=%v pickups=%v log bytes=%v", completed,
			fams["clearml_agent_pickups_total"].Metric[0].Counter.GetValue(), fams["clearml_agent_log_bytes_total"].Metric[0].Counter.GetValue())
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	// A running task's resident memory and CPU: the task waits on a FIFO
	// until the gauge shows it.
	fifo := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	held := e.task("held", "", fmt.Sprintf("print('held', flush=True)\nopen(%q).read()\n", fifo))
	var memory float64
	if !testwait.For(60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("parsing /metrics: %v", err)
		}
		for _, m := range fams["clearml_agent_task_memory_bytes"].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "task" && l.GetValue() == held {
					memory = m.GetGauge().GetValue()
				}
			}
		}
		return memory > 1<<20
	}) {
		t.Fatalf("no resident memory of the running task in /metrics (last %v)\n%s", memory, d.Output())
	}
	release, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	release.Close()
	if tk := e.waitStatus(held, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("held task = %s %q", tk.Status, tk.StatusReason)
	}
}

// TestCreateQueueRace: a queue created by someone else between the
// daemon's lookup and its queues.create is used, not an error.
func TestCreateQueueRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		name := fmt.Sprintf("raced-queue-%d", i)
		d := e.daemon("--queue", name, "--create-queue")
		id := e.task("raced", name, "print('ok')\n") // tasks.enqueue creates the queue too
		if tk := e.waitStatus(id, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
			t.Fatalf("task on a raced queue = %s\n%s", tk.Status, d.Output())
		}
		d.Signal(syscall.SIGTERM)
		d.Wait(30 * time.Second)
	}
}
