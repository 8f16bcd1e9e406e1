package agent

import (
	"testing"
	"testing/synctest"
)

// TestRunOfATaskStillEnding: a task popped again (services mode) while its
// last run still tears down is tracked after that run, and waits for its
// end; the last run's end leaves the new run tracked. A run the parallel
// loop tracked is the one runTask finds.
func TestRunOfATaskStillEnding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &Agent{running: map[string]*runningTask{}}
		first, second := &Slot{WorkerID: "w:service:t"}, &Slot{WorkerID: "w:service:t"}
		rt1 := a.track("t", "q", first)
		if rt1.after != nil {
			t.Fatal("the only run of the task waits for another")
		}
		if again := a.track("t", "q", first); again != rt1 {
			t.Fatal("runTask's track of a run the loop tracked made another")
		}
		rt2 := a.track("t", "q", second)
		if rt2.after == nil || a.running["t"] != rt2 {
			t.Fatalf("the second run: after %v, tracked %v; want it after the first, and tracked", rt2.after, a.running["t"] == rt2)
		}
		started := make(chan struct{})
		go func() {
			<-rt2.after
			close(started)
		}()
		synctest.Wait()
		select {
		case <-started:
			t.Fatal("the second run started while the first was still ending")
		default:
		}
		a.untrack("t", rt1)
		synctest.Wait()
		select {
		case <-started:
		default:
			t.Fatal("the second run did not start once the first ended")
		}
		if a.running["t"] != rt2 {
			t.Fatal("the first run's end forgot the second run")
		}
		a.untrack("t", rt2)
		if len(a.running) != 0 {
			t.Fatalf("running after both ended: %v", a.running)
		}
	})
}
