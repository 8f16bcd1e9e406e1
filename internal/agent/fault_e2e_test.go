package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// numberedLines returns the task's "n <i>" lines in log order.
func (e *env) numberedLines(id string) []string {
	var got []string
	for _, l := range e.logLines(id) {
		if strings.HasPrefix(l, "n ") {
			got = append(got, l)
		}
	}
	return got
}

// checkExactlyOnce fails unless the log holds "n 0" to "n <count-1>", each
// once, in order (waiting for them: delivery may follow the status).
func (e *env) checkExactlyOnce(t *testing.T, id string, count int) {
	t.Helper()
	var got []string
	testwait.For(60*time.Second, func() bool { got = e.numberedLines(id); return len(got) >= count })
	if len(got) != count {
		t.Fatalf("log has %d numbered lines, want %d", len(got), count)
	}
	for i, l := range got {
		if l != fmt.Sprintf("n %d", i) {
			t.Fatalf("line %d = %q: lost, repeated or out of order", i, l)
		}
	}
}

// pidsWhere lists the live processes whose /proc file (environ or
// cmdline) holds every one of the given strings.
func pidsWhere(file string, holds ...string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || !processAlive(de.Name()) {
			continue
		}
		raw, err := os.ReadFile("/proc/" + de.Name() + "/" + file)
		if err != nil {
			continue
		}
		all := true
		for _, h := range holds {
			all = all && strings.Contains(string(raw), h)
		}
		if all {
			out = append(out, pid)
		}
	}
	return out
}

// processesOf lists the live processes of a task (by their environment).
func processesOf(task string) []int { return pidsWhere("environ", "CLEARML_TASK_ID="+task+"\x00") }

// shimsOf finds the task shims whose run folder is the task's.
func shimsOf(task string) []int { return pidsWhere("cmdline", "task-shim\x00", "/"+task+"/run\x00") }

// killedDuring runs a task on a daemon and kills the daemon with SIGKILL
// once the task's log shows line; it returns the task's id.
func (e *env) killedDuring(t *testing.T, name, code, line string) string {
	t.Helper()
	d := e.daemon("--queue", "default")
	id := e.task(name, "", code)
	waitLog(t, e, id, line, 60*time.Second)
	d.Signal(syscall.SIGKILL)
	d.Wait(60 * time.Second)
	if pidAlive(d.Pid()) {
		t.Fatal("the daemon did not die of SIGKILL")
	}
	return id
}

// A daemon killed with SIGKILL in the middle of a task, and started again:
// the task's process ran on under its shim; the new daemon takes it back,
// its log continues exactly where it stopped, and it completes.
func TestDaemonKilledTaskTakenBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const count = 600
	// Half-way, the task waits for the test: it cannot end before its
	// daemon is killed, however late the test sees its lines.
	release := filepath.Join(e.dir, "release")
	id := e.killedDuring(t, "survivor", fmt.Sprintf("import os, time\nfor i in range(%d):\n"+
		"    while i == %d and not os.path.exists(%q):\n        time.sleep(0.01)\n"+
		"    print('n', i, flush=True)\n    time.sleep(0.01)\n", count, count/2, release), "n 50")
	if len(processesOf(id)) == 0 {
		t.Fatal("the task died with its daemon")
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	second := e.daemon("--queue", "default")
	tk := e.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	if tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, second.Output())
	}
	e.checkExactlyOnce(t, id, count)
	if !strings.Contains(strings.Join(e.logLines(id), "\n"), "following the task again") {
		t.Error("the log does not say the task was taken back")
	}
}

// A task that prints nothing survives the daemon's death too, and abort
// still works on it after the restart: every process goes.
func TestAbortAfterDaemonRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.killedDuring(t, "quiet", "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\nprint('up', flush=True)\ntime.sleep(300)\n", "up")
	e.daemon("--queue", "default")
	waitLog(t, e, id, "following the task again", 60*time.Second)
	if err := e.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": id}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := e.waitStatus(id, 60*time.Second, "stopped", "failed", "completed")
	if tk.Status != "stopped" || tk.StatusReason != "task was stopped by tasks.stop" {
		t.Fatalf("task = %s %q", tk.Status, tk.StatusReason)
	}
	if !testwait.For(60*time.Second, func() bool { return len(processesOf(id)) == 0 }) {
		t.Fatalf("processes of the aborted task survive: %v", processesOf(id))
	}
}

// A task that ended while its daemon was dead gets its final status and
// its last lines when the daemon is back.
func TestTaskEndedWhileDaemonDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.killedDuring(t, "ends alone", "import time, sys\nfor i in range(100):\n    print('n', i, flush=True)\n    time.sleep(0.02)\nsys.exit(4)\n", "n 5")
	testwait.Until(t, 60*time.Second, func() bool { return len(processesOf(id)) == 0 }, "the task to end without its daemon")
	e.daemon("--queue", "default")
	tk := e.waitStatus(id, 60*time.Second, "completed", "failed", "stopped")
	if tk.Status != "failed" || tk.StatusReason != "worker execution exit code 4" {
		t.Fatalf("task = %s %q", tk.Status, tk.StatusReason)
	}
	e.checkExactlyOnce(t, id, 100)
}

// procState is the state letter of a process in /proc ("" when gone).
func procState(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// killTree kills a task's shim and processes as one crash would: the
// shim is stopped first, so that it cannot see the task die and record an
// exit code, and everything is gone when killTree returns.
func killTree(t *testing.T, id string) {
	t.Helper()
	shims := shimsOf(id)
	if len(shims) != 1 {
		t.Fatalf("task %s has shims %v, want one", id, shims)
	}
	shim := shims[0]
	syscall.Kill(shim, syscall.SIGSTOP)
	testwait.Until(t, 60*time.Second, func() bool { return procState(shim) == "T" }, "the shim to stop")
	for _, pid := range processesOf(id) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Kill(shim, syscall.SIGKILL) // (SIGKILL ends a stopped process too)
	testwait.Until(t, 60*time.Second, func() bool { return len(processesOf(id))+len(shimsOf(id)) == 0 }, "the task's processes to die")
}

// When the task's processes died with the daemon (a crash that took the
// whole tree, an OOM kill), the restarted daemon fails the task "agent
// lost" instead of leaving it in progress for the server's watchdog (10
// minutes), whether the tree was gone before it started or went while it
// took the task back.
func TestTaskLostWithDaemonFailsAtRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// whileTakenBack: the tree dies after the restarted daemon took
		// the task back (it found the shim alive), not before the restart.
		whileTakenBack bool
	}{{"gone before the restart", false}, {"dies while taken back", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			id := e.killedDuring(t, "lost", "import time\nprint('up', flush=True)\ntime.sleep(300)\n", "up")
			var d *testbin.Process
			if tc.whileTakenBack {
				// The shim is stopped (alive to the daemon) until the
				// daemon follows the task again.
				shim := shimsOf(id)
				if len(shim) != 1 {
					t.Fatalf("shims %v", shim)
				}
				syscall.Kill(shim[0], syscall.SIGSTOP)
				d = e.daemon("--queue", "default")
				waitLog(t, e, id, "following the task again", 60*time.Second)
				killTree(t, id)
			} else {
				killTree(t, id)
				d = e.daemon("--queue", "default")
			}
			tk := e.waitStatus(id, 60*time.Second, "failed", "completed", "stopped")
			if tk.Status != "failed" || tk.StatusReason != "agent lost" {
				t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
			}
			// And the daemon goes on with new tasks.
			next := e.task("next", "", "print('fine')\n")
			if tk := e.waitStatus(next, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
				t.Fatalf("next task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
			}
		})
	}
}

// --stop while the task's environment is being built (pip waits on a
// slow package index) ends the task "stopped" with reason "agent
// shutdown", not "failed".
func TestStopDuringEnvironmentBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	index := slowIndex(t)
	env := append(e.daemonEnv(), "PIP_INDEX_URL="+index, "PIP_NO_INDEX=", "CLEARML_AGENT__AGENT__VENVS_CACHE__PATH="+t.TempDir())
	args := []string{"--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5"}
	d := testbin.Start(t, env, args...)
	ctx := context.Background()
	var created struct{ ID string }
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "slow env", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "t.py", "diff": "print('ran')\n",
			"requirements": map[string]any{"pip": "neverthere==1.0\n"}}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default)
	waitLog(t, e, created.ID, "Looking in indexes", 90*time.Second)
	stop := testbin.Start(t, env, append(args[:len(args)-3:len(args)-3], "--stop")...)
	if code := stop.Wait(90 * time.Second); code != 0 {
		t.Fatalf("--stop exit %d\n%s", code, stop.Output())
	}
	d.Wait(60 * time.Second)
	tk := e.get(created.ID)
	if tk.Status != "stopped" || tk.StatusReason != "agent shutdown" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
}

// slowIndex is a package index that never answers (until the test ends).
func slowIndex(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL + "/simple"
}

// Secrets stay out of `ps`, the task log (the server's events) and the
// daemon's console: --git-pass, and the values of secret-named variables
// from the daemon's environment and the task's Environment section, even
// when the task prints them.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const gitPass, envToken, taskPass = "gitpass-S3CRET-1", "tok-S3CRET-22", "db-S3CRET-333"
	env := append(e.daemonEnv(), "MY_SERVICE_TOKEN="+envToken)
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground",
		"--polling-interval", "0.5", "--git-user", "someone", "--git-pass", gitPass)
	if !testwait.For(60*time.Second, func() bool { return strings.Contains(d.Output(), "Listening to queues") }) {
		t.Fatalf("daemon did not start:\n%s", d.Output())
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.Pid()))
	if strings.Contains(string(cmdline), gitPass) {
		t.Errorf("--git-pass visible in the daemon's command line: %q", cmdline)
	}
	ctx := context.Background()
	var created struct{ ID string }
	code := fmt.Sprintf("import os\nprint('token', os.environ.get('MY_SERVICE_TOKEN'))\nprint('db', os.environ.get('DB_PASSWORD'))\nprint('git', %q)\n", gitPass)
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "leaky", "type": "training",
		"script":      map[string]any{"binary": "python3", "entry_point": "t.py", "diff": code},
		"hyperparams": map[string]any{"Environment": map[string]any{"DB_PASSWORD": map[string]any{"section": "Environment", "name": "DB_PASSWORD", "value": taskPass}}},
	}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default)
	if tk := e.waitStatus(created.ID, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	log := strings.Join(e.logLines(created.ID), "\n")
	if !strings.Contains(log, "token ********") || !strings.Contains(log, "db ********") || !strings.Contains(log, "git ********") {
		t.Errorf("the task's lines are not there, masked:\n%s", log)
	}
	// All the daemon will ever print: its output once it stopped.
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(60 * time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM\n%s", code, d.Output())
	}
	for _, s := range []string{gitPass, envToken, taskPass} {
		if strings.Contains(log, s) {
			t.Errorf("secret %q in the task log", s)
		}
		if strings.Contains(d.Output(), s) {
			t.Errorf("secret %q on the daemon console", s)
		}
	}
}

// An unwritable log spool does not cost the task its log: the lines go
// from memory, all of them, and the task says its spool failed.
func TestUnwritableSpoolStillDeliversTheLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	env := e.daemonEnv()
	base := e.dir + "/cache/clearml-agent"
	os.MkdirAll(base, 0o700)
	os.WriteFile(base+"/spool", []byte("not a folder"), 0o600)
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
	id := e.task("no spool", "", "for i in range(300):\n    print('n', i)\n")
	tk := e.waitStatus(id, 60*time.Second, "completed", "failed", "stopped")
	if tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	e.checkExactlyOnce(t, id, 300)
	if tk := e.get(id); tk.Runtime["_log_spool_error"] == nil {
		t.Fatalf("the task does not say its log spool failed: runtime %v", tk.Runtime)
	}
}
