package agent_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/memtrim"
	"github.com/goclearml/agent/internal/testwait"
)

func rssFileKB(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := memtrim.FileResidentKB(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSettledDaemonGivesBackStartupPages: once settled, a daemon no longer
// holds the pages of the binary its start-up touched (most of its
// resident memory), and runs tasks and stops as before.
func TestSettledDaemonGivesBackStartupPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.daemon("--queue", "default")
	d.WaitOutput(t, "Listening to queues", 60*time.Second)
	started := rssFileKB(t, d.Pid())
	var now int64
	if !testwait.For(2*time.Minute, func() bool { now = rssFileKB(t, d.Pid()); return now < started/2 }) {
		t.Fatalf("pages of the binary: %d kB after the start, still %d kB\n%s", started, now, d.Output())
	}
	t.Logf("pages of the binary: %d kB after the start, %d kB settled", started, now)
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
