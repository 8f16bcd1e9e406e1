package agent_test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownDrainsThenAborts: the first SIGTERM lets the running task
// finish and takes no new one; a second SIGTERM aborts the running task,
// which is reported stopped with reason "agent shutdown".
func TestShutdownDrainsThenAborts(t *testing.T) {
	t.Parallel()
	waitRunning := func(e *env, id string) {
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(strings.Join(e.logLines(id), "\n"), "working") {
			if time.Now().After(deadline) {
				t.Fatalf("task %s did not start", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Run("drain", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		d := e.daemon("--queue", "default")
		first := e.task("finishes", "", "import time\nprint('working', flush=True)\ntime.sleep(2)\nprint('finished')\n")
		waitRunning(e, first)
		second := e.task("never taken", "", "print('should not run')\n")
		d.Signal(syscall.SIGTERM)
		if code := d.Wait(60 * time.Second); code != 0 {
			t.Fatalf("daemon exit %d\n%s", code, d.Output())
		}
		if tk := e.get(first); tk.Status != "completed" {
			t.Fatalf("running task after drain = %s %q", tk.Status, tk.StatusReason)
		}
		if tk := e.get(second); tk.Status != "queued" {
			t.Fatalf("queued task after drain = %s (taken during a drain)", tk.Status)
		}
	})
	t.Run("second signal aborts", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		d := e.daemon("--queue", "default")
		id := e.task("long", "", "import time\nprint('working', flush=True)\ntime.sleep(300)\n")
		waitRunning(e, id)
		d.Signal(syscall.SIGTERM)
		time.Sleep(300 * time.Millisecond)
		d.Signal(syscall.SIGTERM)
		if code := d.Wait(60 * time.Second); code != 0 {
			t.Fatalf("daemon exit %d\n%s", code, d.Output())
		}
		tk := e.get(id)
		if tk.Status != "stopped" || tk.StatusReason != "agent shutdown" {
			t.Fatalf("task after shutdown = %s %q", tk.Status, tk.StatusReason)
		}
	})
}
