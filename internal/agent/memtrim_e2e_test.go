package agent_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/memtrim/memtrimtest"
)

// TestSettledDaemonGivesBackStartupPages: once settled, a daemon no longer
// holds the pages of the binary its start-up touched (most of its
// resident memory), and runs tasks and stops as before.
func TestSettledDaemonGivesBackStartupPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.daemon("--queue", "default")
	d.WaitOutput(t, "Listening to queues", 60*time.Second)
	memtrimtest.WaitSettled(t, d.Pid(), 2*time.Minute)
	id := e.task("after settling", "", "print('still here')\n")
	done := e.waitStatus(id, 60*time.Second, "completed", "failed", "stopped")
	if done.Status != "completed" || !strings.Contains(strings.Join(e.logLines(id), "\n"), "still here") {
		t.Fatalf("task = %s %q\n%s", done.Status, done.StatusReason, d.Output())
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Fatalf("daemon exit code %d after SIGTERM\n%s", code, d.Output())
	}
}
