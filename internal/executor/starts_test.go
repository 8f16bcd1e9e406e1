package executor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// startOn runs argv under e in the background; name tells the run's
// processes from the test's other runs.
func startOn(t *testing.T, e *Executor, ctx context.Context, name string, argv ...string) *running {
	r := &running{marker: strings.ReplaceAll(t.Name()+"_"+name, "/", "_"), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.exit, r.err = e.Run(ctx, Spec{Argv: argv, Env: os.Environ(), Marker: r.marker, GracePeriod: time.Second}, &r.out)
	}()
	return r
}

// newFifo makes the named pipe a "fifo" setup waits on.
func newFifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// release lets the "fifo" setups waiting on path go on.
func release(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// waitWaiting waits until n runs of e wait for their turn to start.
func waitWaiting(t *testing.T, e *Executor, n int32) {
	t.Helper()
	g := e.gate()
	testwait.Until(t, 30*time.Second, func() bool { return g.waiting.Load() == n }, fmt.Sprintf("%d runs waiting for their turn", n))
}

func checkRan(t *testing.T, r *running, want string) {
	t.Helper()
	exit, out := r.wait(t)
	if exit.Code != 0 || exit.Cancelled || out != want {
		t.Fatalf("exit %+v output %q, want code 0 and %q", exit, out, want)
	}
}

// Runs take turns to start: with one turn, a run waits while another's
// setup runs, and starts once that one's task process runs (here a task
// that goes on until the second run has ended).
func TestStartTurnsOneAtATime(t *testing.T) {
	t.Parallel()
	e := &Executor{MaxStarting: 1, StartHold: time.Hour}
	setup, task := newFifo(t), newFifo(t)
	a := startOn(t, e, t.Context(), "a", "prep", "fifo", setup, "echo a runs; cat "+task+" > /dev/null")
	a.waitOutput(t, "preparing")
	b := startOn(t, e, t.Context(), "b", "sh", "-c", "echo b ran")
	waitWaiting(t, e, 1)
	if out := b.out.String(); out != "" {
		t.Fatalf("a run waiting for its turn printed %q", out)
	}
	release(t, setup)
	checkRan(t, b, "b ran\n")
	release(t, task)
	checkRan(t, a, "preparing\na runs\n")
}

// A setup that takes longer than the hold (pip, git) lets the next run
// start.
func TestStartTurnHoldEnds(t *testing.T) {
	t.Parallel()
	e := &Executor{MaxStarting: 1, StartHold: 50 * time.Millisecond}
	fifo := newFifo(t)
	a := startOn(t, e, t.Context(), "a", "prep", "fifo", fifo, "echo a ran")
	a.waitOutput(t, "preparing")
	checkRan(t, startOn(t, e, t.Context(), "b", "sh", "-c", "echo b ran"), "b ran\n")
	select {
	case <-a.done:
		t.Fatalf("the first run ended before its setup was let go: %q", a.out.String())
	default:
	}
	release(t, fifo)
	checkRan(t, a, "preparing\na ran\n")
}

// A run stopped while it waits for its turn ends at once as cancelled,
// nothing of it started; a run that fails to start, or whose setup fails,
// gives its turn back.
func TestStartTurnStoppedOrFailed(t *testing.T) {
	t.Parallel()
	e := &Executor{MaxStarting: 1, StartHold: time.Hour}
	fifo := newFifo(t)
	a := startOn(t, e, t.Context(), "a", "prep", "fifo", fifo, "echo a ran")
	a.waitOutput(t, "preparing")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	b := startOn(t, e, ctx, "b", "sh", "-c", "echo b ran")
	waitWaiting(t, e, 1)
	cancel()
	if exit, out := b.wait(t); !exit.Cancelled || exit.Code != 0 || out != "" {
		t.Fatalf("a run stopped while waiting: exit %+v output %q, want cancelled with nothing run", exit, out)
	}
	waitWaiting(t, e, 0)
	release(t, fifo)
	checkRan(t, a, "preparing\na ran\n")

	if _, err := e.Run(t.Context(), Spec{Argv: []string{"true"}, Dir: filepath.Join(t.TempDir(), "missing"),
		Marker: "TestStartTurnStoppedOrFailed_missing"}, io.Discard); err == nil {
		t.Fatal("a run in a missing folder started")
	}
	failed := startOn(t, e, t.Context(), "failed", "prep", "fail")
	if exit, _ := failed.wait(t); exit.Code != 3 {
		t.Fatalf("failed setup: exit %+v, want code 3", exit)
	}
	// Each of them gave its turn back: the next run starts.
	checkRan(t, startOn(t, e, t.Context(), "c", "sh", "-c", "echo c ran"), "c ran\n")
}

// Without a bound every run starts at once; by default the bound is the
// cores this process may use, at least 2.
func TestStartTurnsBound(t *testing.T) {
	t.Parallel()
	e := &Executor{MaxStarting: -1, StartHold: time.Hour}
	fifos := []string{newFifo(t), newFifo(t)}
	var runs []*running
	for i, f := range fifos {
		r := startOn(t, e, t.Context(), fmt.Sprint(i), "prep", "fifo", f, fmt.Sprintf("echo %d ran", i))
		runs = append(runs, r)
	}
	for _, r := range runs {
		r.waitOutput(t, "preparing")
	}
	for i, r := range runs {
		release(t, fifos[i])
		checkRan(t, r, fmt.Sprintf("preparing\n%d ran\n", i))
	}
	if got, want := cap((&Executor{}).gate().turns), max(2, runtime.GOMAXPROCS(0)); got != want {
		t.Fatalf("default turns %d, want %d", got, want)
	}
}
