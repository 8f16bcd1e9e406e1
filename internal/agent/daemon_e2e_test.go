package agent_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// sharedCache holds the virtualenv cache that every daemon of this test
// binary shares, as daemons on one machine do: the first task builds the
// pip seed and the empty environment, the others reuse them.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clearml-agent-e2e-cache-")
	if err != nil {
		panic(err)
	}
	sharedCache = dir
	code := m.Run()
	pgtest.Cleanup()
	testbin.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one end-to-end setting: a server process, a client, and the
// environment daemons run with (private temp, cache and home folders).
type env struct {
	t      testing.TB
	srv    *testbin.Server
	api    *apiclient.Client
	dir    string
	listen string
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newEnv starts a server (with serverArgs, such as --db) and logs in.
func newEnv(t testing.TB, serverArgs ...string) *env {
	t.Helper()
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs Linux /proc")
	}
	e := &env{t: t, dir: t.TempDir(), listen: freeAddr(t)}
	e.srv = testbin.StartServerAt(t, filepath.Join(e.dir, "server"), e.listen, serverArgs...)
	c, err := apiclient.New(apiclient.Config{Server: e.srv.URL, AccessKey: e.srv.AccessKey, SecretKey: e.srv.SecretKey, WorkerName: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.api = c
	return e
}

// daemon starts `clearml-agent daemon` against the test server.
func (e *env) daemon(args ...string) *testbin.Process {
	e.t.Helper()
	argv := append([]string{"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5"}, args...)
	d := testbin.Start(e.t, e.daemonEnv(), argv...)
	// Before the harness kills it (cleanups run last first): a daemon
	// stopped gracefully stops its tasks, so that none outlives the test
	// under its shim, writing in the folders the test removes.
	e.t.Cleanup(func() {
		if d.Signal(syscall.SIGTERM) == nil {
			d.Wait(60 * time.Second)
		}
	})
	return d
}

// daemonEnv gives daemons private temp, cache and home folders.
func (e *env) daemonEnv() []string {
	for _, d := range []string{"tmp", "cache", "home"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o700)
	}
	return []string{"TMPDIR=" + filepath.Join(e.dir, "tmp"), "XDG_CACHE_HOME=" + filepath.Join(e.dir, "cache"),
		"HOME=" + filepath.Join(e.dir, "home"), "CLEARML_WORKER_NAME=e2ehost",
		// A daemon the test harness kills leaves its task to its shim:
		// stopped after 15 s without a daemon, not 10 minutes.
		"CLEARML_AGENT__AGENT__REATTACH_TIMEOUT_SEC=15",
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH=" + filepath.Join(sharedCache, "venvs"),
		"CLEARML_AGENT__AGENT__VCS_CACHE__PATH=" + filepath.Join(sharedCache, "vcs")}
}

// task creates a task whose script is the given Python code and enqueues it.
func (e *env) task(name, queue, code string) string {
	e.t.Helper()
	ctx := context.Background()
	var created api.IDResponse
	err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": name, "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "task.py", "diff": code}}, &created, apiclient.Default)
	if err != nil {
		e.t.Fatal(err)
	}
	body := map[string]any{"task": created.ID}
	if queue != "" {
		body["queue_name"] = queue
	}
	if err := e.api.Call(ctx, "", "tasks.enqueue", body, nil, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	return created.ID
}

func (e *env) get(id string) *api.Task {
	e.t.Helper()
	t, err := e.api.Task(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// waitStatus waits until the task reaches one of the given statuses.
func (e *env) waitStatus(id string, d time.Duration, want ...string) *api.Task {
	e.t.Helper()
	var t *api.Task
	if testwait.For(d, func() bool { t = e.get(id); return slices.Contains(want, t.Status) }) {
		return t
	}
	e.t.Fatalf("task %s is %s (%q) after %v, want %v", id, t.Status, t.StatusReason, d, want)
	return nil
}

// logLines returns the task's log messages, oldest first, split in lines.
func (e *env) logLines(id string) []string {
	e.t.Helper()
	var resp api.TaskLogResponse
	err := e.api.Call(context.Background(), "", "events.get_task_log",
		map[string]any{"task": id, "navigate_earlier": false, "batch_size": 10000}, &resp, apiclient.Default)
	if err != nil {
		e.t.Fatal(err)
	}
	var lines []string
	for _, ev := range resp.Events {
		msg, _ := ev["msg"].(string)
		lines = append(lines, strings.Split(strings.TrimRight(msg, "\n"), "\n")...)
	}
	return lines
}

func TestDaemonRunsTasksToTheirStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.daemon("--queue", "default")
	ok := e.task("prints", "", "for i in range(200):\n    print('line', i)\n")
	bad := e.task("fails", "", "import sys\nprint('about to fail')\nsys.exit(3)\n")
	done := e.waitStatus(ok, 60*time.Second, "completed", "failed", "stopped")
	if done.Status != "completed" || done.StatusReason != "worker execution done" {
		t.Fatalf("task = %s %q\n%s", done.Status, done.StatusReason, d.Output())
	}
	var got []string
	for _, l := range e.logLines(ok) {
		if strings.HasPrefix(l, "line ") {
			got = append(got, l)
		}
	}
	if len(got) != 200 {
		t.Fatalf("log has %d task lines, want 200: %v", len(got), got)
	}
	for i, l := range got {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d = %q: out of order or changed", i, l)
		}
	}
	failed := e.waitStatus(bad, 60*time.Second, "completed", "failed", "stopped")
	if failed.Status != "failed" || failed.StatusReason != "worker execution exit code 3" {
		t.Fatalf("failing task = %s %q", failed.Status, failed.StatusReason)
	}
	if !strings.Contains(strings.Join(e.logLines(bad), "\n"), "about to fail") {
		t.Fatalf("failing task's output missing")
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Fatalf("daemon exit code %d after SIGTERM\n%s", code, d.Output())
	}
}

func processAlive(pid string) bool {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func TestAbortStopsEveryProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pidFile := filepath.Join(e.dir, "pids")
	d := e.daemon("--queue", "default")
	code := fmt.Sprintf(`import os, subprocess, time
pids = open(%q, "a")
child = subprocess.Popen(["sleep", "300"])
pids.write(str(child.pid) + "\n")
grand = subprocess.Popen(["sh", "-c", "sleep 301 & echo $! >> %s; wait"])
pids.write(str(grand.pid) + "\n")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        pids.write(str(os.getpid()) + "\n"); pids.flush()
        time.sleep(302)
    os._exit(0)
pids.flush()
print("all started", flush=True)
while True:
    time.sleep(0.1)
`, pidFile, pidFile)
	id := e.task("abort me", "", code)
	if !testwait.For(60*time.Second, func() bool { return strings.Contains(strings.Join(e.logLines(id), "\n"), "all started") }) {
		t.Fatalf("task did not start\n%s", d.Output())
	}
	// The double-forked grandchild writes its pid on its own time.
	testwait.Until(t, 60*time.Second, func() bool {
		raw, _ := os.ReadFile(pidFile)
		return len(distinct(strings.Fields(string(raw)))) >= 4 && strings.HasSuffix(string(raw), "\n")
	}, "the four pids of the task's processes")
	if err := e.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": id}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if tk := e.get(id); tk.StatusMessage != "stopping" {
		t.Fatalf("stop did not go through the worker: %+v", tk)
	}
	stopped := e.waitStatus(id, 60*time.Second, "stopped", "failed", "completed")
	if stopped.Status != "stopped" || stopped.StatusReason != "task was stopped by tasks.stop" {
		t.Fatalf("aborted task = %s %q", stopped.Status, stopped.StatusReason)
	}
	raw, _ := os.ReadFile(pidFile)
	pids := distinct(strings.Fields(string(raw)))
	if len(pids) < 4 {
		t.Fatalf("expected 4 pids, got %q", raw)
	}
	for _, p := range pids {
		if processAlive(p) {
			t.Errorf("process %s of the aborted task is still running", p)
		}
	}
}

// distinct returns the strings of list without repeats, in order.
func distinct(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func TestTwoDaemonsGetDifferentIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.daemon("--queue", "default")
	b := e.daemon("--queue", "default")
	var ids []string
	testwait.For(60*time.Second, func() bool {
		var resp struct{ Workers []struct{ ID string } }
		if err := e.api.Call(context.Background(), "", "workers.get_all", nil, &resp, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, w := range resp.Workers {
			if strings.HasPrefix(w.ID, "e2ehost:") {
				ids = append(ids, w.ID)
			}
		}
		return len(ids) == 2
	})
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("worker ids = %v\n%s\n%s", ids, a.Output(), b.Output())
	}
}

// restartServer starts the server again on the same address and data.
func restartServer(t testing.TB, e *env) *testbin.Server {
	t.Helper()
	return testbin.StartServerAt(t, filepath.Join(e.dir, "server"), e.listen)
}
