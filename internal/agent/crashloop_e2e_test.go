package agent_test

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// A daemon killed with SIGKILL again and again, at random moments (right
// after its start, while it takes the task back, while it ships the log),
// and started again each time: the task's log still holds every line
// exactly once, in order. Before, a kill within about a second of a
// restart made the next start resend the log from the beginning (the new
// spool had no resume mark yet): 488 of 1,500 lines doubled over 5 kills.
func TestCrashLoopLogExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long: kills a daemon a dozen times")
	}
	t.Parallel()
	e := newEnv(t)
	const count = 1500
	id := e.task("crash loop", "", fmt.Sprintf("import time\nfor i in range(%d):\n    print('n', i, flush=True)\n    time.sleep(0.01)\n", count))
	d := e.daemon("--queue", "default")
	waitLog(t, e, id, "n 20", 60*time.Second)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("kill moments from seed %d", seed)
	for cycle := range 12 {
		// The kill comes at a random moment of the daemon's first 2.5 s
		// (the moment is the test's input, not something it waits for).
		kill := time.NewTimer(time.Duration(rng.Int64N(int64(2500 * time.Millisecond))))
		<-kill.C
		if code := d.Wait(0); code != -1 {
			t.Fatalf("cycle %d: the daemon exited by itself (%d):\n%s", cycle, code, d.Output())
		}
		d.Signal(syscall.SIGKILL)
		d.Wait(10 * time.Second)
		if st := e.get(id).Status; st != "in_progress" && st != "queued" {
			break // the task ended meanwhile; the next start reports it
		}
		d = e.daemon("--queue", "default")
	}
	d = e.daemon("--queue", "default")
	if tk := e.waitStatus(id, 120*time.Second, "completed", "failed", "stopped"); tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	e.checkExactlyOnce(t, id, count)
}
