package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testwait"
)

// numbered keeps the log lines that start with prefix.
func numbered(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// checkSequence compares got with prefix 0 .. prefix n-1 and says how many
// lines are missing and duplicated, and whether the order held.
func checkSequence(got []string, prefix string, n int) (missing, dup int, inOrder bool) {
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("%s%d", prefix, i)
		switch c := seen[want[i]]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	return missing, dup, slices.Equal(got, want)
}

// observeStatus reads the task's status through the load balancer until
// end, and returns the statuses seen other than in_progress.
func observeStatus(ctx context.Context, c *apiclient.Client, id string, end time.Time) []string {
	var odd []string
	for time.Now().Before(end) {
		st, _, err := c.WaitTaskStatus(ctx, id, api.StatusInProgress, "", min(time.Until(end), 5*time.Second))
		if err == nil && st != api.StatusInProgress {
			odd = append(odd, st)
			return odd
		}
		if err != nil && !c.HasExtension("task_wait") {
			return odd
		}
	}
	return odd
}

// A daemon's host cut off from every network for 60 s while its task
// logs 10,000 lines; the task ends while the host is still cut off. The
// task goes on, every line arrives once and in order, the final status is
// set, and the server never hands the task to anyone else.
func TestClusterDaemonPartitionedWhileLogging(t *testing.T) {
	t.Parallel()
	b := bed(t)
	ctx := context.Background()
	c := b.Client(t)
	host := b.Daemons["d3"]
	// 20 bursts of 500 lines, 2 s apart: about 40 s.
	script := `i=0
while [ $i -lt 20 ]; do
  j=0
  while [ $j -lt 500 ]; do echo "line $((i*500+j))"; j=$((j+1)); done
  i=$((i+1))
  sleep 2
done
`
	id, err := shTask(ctx, c, "partitioned logger", cutQueue, script)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 60*time.Second, func() bool { return slices.Contains(logLines(t, c, id), "line 0") }, "the task's first line")
	if err := b.Docker("network", "disconnect", b.Front, host); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// The partition lasts 60 s (the scenario's length, not a wait for
	// anything); meanwhile the task is watched through the balancer.
	odd := observeStatus(ctx, c, id, cut.Add(60*time.Second))
	if err := b.Docker("network", "connect", b.Front, host); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	tk := waitStatus(t, c, id, 3*time.Minute, api.StatusCompleted, api.StatusFailed, api.StatusStopped)
	recovery := time.Since(healed)
	got := numbered(logLines(t, c, id), "line ")
	missing, dup, ordered := checkSequence(got, "line ", 10000)
	t.Logf("RESULT scenario=daemon-partitioned faults=\"docker network disconnect of a daemon host for 60 s while its task logs 10,000 lines\" status=%s lines=%d missing=%d duplicated=%d in-order=%v seen-meanwhile=%v recovery=%s",
		tk.Status, len(got), missing, dup, ordered, odd, recovery.Round(time.Millisecond))
	if tk.Status != api.StatusCompleted {
		t.Errorf("task = %s (%q), want completed", tk.Status, tk.StatusReason)
	}
	if len(odd) > 0 {
		t.Errorf("during the partition the task became %v", odd)
	}
	if missing > 0 || dup > 0 || !ordered {
		t.Errorf("log: %d lines, %d missing, %d duplicated, in order: %v", len(got), missing, dup, ordered)
	}
	if !strings.HasPrefix(tk.LastWorker, "d3") {
		t.Errorf("last worker %q, want the partitioned host's d3", tk.LastWorker)
	}
}

// A daemon's host frozen (docker pause) for longer than the worker
// timeout, then resumed: its running task is not run by anyone else, it
// finishes with every line once, its status is right, and the worker is
// listed again.
func TestClusterFrozenDaemonHost(t *testing.T) {
	t.Parallel()
	b := bed(t)
	ctx := context.Background()
	c := b.Client(t)
	host := b.Daemons["d4"]
	id, err := shTask(ctx, c, "frozen ticker", frozenQueue, "i=0\nwhile [ $i -lt 20 ]; do echo \"tick $i\"; i=$((i+1)); sleep 1; done\n")
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 60*time.Second, func() bool { return slices.Contains(logLines(t, c, id), "tick 0") }, "the task's first line")
	listed := func() bool {
		ids, err := c.WorkerIDs(ctx)
		if err != nil {
			return true
		}
		for _, w := range ids {
			if strings.HasPrefix(w, "d4") {
				return true
			}
		}
		return false
	}
	if !listed() {
		t.Fatal("the daemon d4 is not in the workers list before the freeze")
	}
	if err := b.Docker("pause", host); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	// Frozen for the worker timeout and 5 s more.
	odd := observeStatus(ctx, c, id, frozen.Add(workerTimeout+5*time.Second))
	dropped := !listed()
	if err := b.Docker("unpause", host); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	relisted := testwait.For(30*time.Second, listed)
	recovery := time.Since(resumed)
	tk := waitStatus(t, c, id, 2*time.Minute, api.StatusCompleted, api.StatusFailed, api.StatusStopped)
	got := numbered(logLines(t, c, id), "tick ")
	missing, dup, ordered := checkSequence(got, "tick ", 20)
	t.Logf("RESULT scenario=daemon-frozen faults=\"docker pause of a daemon host for %s (worker timeout %s)\" status=%s lines=%d missing=%d duplicated=%d in-order=%v seen-meanwhile=%v dropped-from-workers=%v listed-again=%v recovery=%s",
		workerTimeout+5*time.Second, workerTimeout, tk.Status, len(got), missing, dup, ordered, odd, dropped, relisted, recovery.Round(time.Millisecond))
	if tk.Status != api.StatusCompleted {
		t.Errorf("task = %s (%q), want completed", tk.Status, tk.StatusReason)
	}
	if len(odd) > 0 {
		t.Errorf("while the host was frozen the task became %v", odd)
	}
	if missing > 0 || dup > 0 || !ordered {
		t.Errorf("log: %v", got)
	}
	if !dropped {
		t.Errorf("the frozen worker was still listed after the worker timeout")
	}
	if !relisted {
		t.Errorf("the worker was not listed again after it resumed")
	}
	if !strings.HasPrefix(tk.LastWorker, "d4") {
		t.Errorf("last worker %q, want the frozen host's d4", tk.LastWorker)
	}
}
