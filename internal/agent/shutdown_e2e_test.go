package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// TestShutdownDrainsThenAborts: the first SIGTERM lets the running task
// finish and takes no new one; a second SIGTERM aborts the running task,
// which is reported stopped with reason "agent shutdown".
func TestShutdownDrainsThenAborts(t *testing.T) {
	t.Parallel()
	t.Run("drain", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		d := e.daemon("--queue", "default")
		// The running task ends when the test says so: after the daemon
		// took the signal, with the second task waiting in the queue.
		release := filepath.Join(e.dir, "release")
		first := e.task("finishes", "", fmt.Sprintf("import os, time\nprint('working', flush=True)\n"+
			"while not os.path.exists(%q):\n    time.sleep(0.05)\nprint('finished')\n", release))
		waitLog(t, e, first, "working", 60*time.Second)
		second := e.task("never taken", "", "print('should not run')\n")
		d.Signal(syscall.SIGTERM)
		testwait.Until(t, 60*time.Second, func() bool { return e.draining(d.Pid()) }, "the daemon to drain")
		if err := os.WriteFile(release, nil, 0o600); err != nil {
			t.Fatal(err)
		}
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
		waitLog(t, e, id, "working", 60*time.Second)
		d.Signal(syscall.SIGTERM)
		// The second signal once the daemon took the first: sent while
		// the first is still pending, it would be lost.
		testwait.Until(t, 60*time.Second, func() bool { return e.draining(d.Pid()) }, "the daemon to drain")
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
