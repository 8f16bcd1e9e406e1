package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testwait"
)

// worker keeps work flowing through the load balancer while a fault is
// injected: submitters run shell tasks of 200 numbered lines on the daemons
// one after another, and a reader lists tasks and queues as the web UI
// does. Every call that fails after the client's retries is kept.
type worker struct {
	t        *testing.T
	b        *Bed
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ids      []string
	surfaced []failure
	// outages are faults no call can get through (the database down):
	// a call that gave up during one failed as it should.
	outages  []window
	excused  int // calls that gave up during an outage
	reads    int
	repolled int // status polls that failed for a moment and were made again
	slowest  time.Duration
}

func startWork(t *testing.T, b *Bed, submitters int) *worker {
	w := &worker{t: t, b: b, stop: make(chan struct{})}
	ctx := context.Background()
	for range submitters {
		c := b.Client(t)
		w.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				start := time.Now()
				id, err := shTask(ctx, c, "steady work", workQueue, "i=0\nwhile [ $i -lt 200 ]; do echo \"n $i\"; i=$((i+1)); done\n")
				if err != nil {
					w.fail(start, fmt.Errorf("submitting: %w", err))
					continue
				}
				w.mu.Lock()
				w.ids = append(w.ids, id)
				w.mu.Unlock()
				// Wait for it to end, as `tasks logs --follow` does: a
				// status poll that fails for a moment is polled again, for
				// up to two minutes of failures in a row (a poll that finds
				// no replica ready fails in milliseconds, so a count of
				// attempts would be spent before a database restart ends
				// on a loaded machine).
				var failingSince time.Time
				for st := api.StatusQueued; st == api.StatusQueued || st == api.StatusInProgress || st == api.StatusCreated; {
					got, _, err := c.WaitTaskStatus(ctx, id, st, "", 10*time.Second)
					if err != nil && failingSince.IsZero() {
						failingSince = time.Now()
					}
					switch {
					case err == nil:
						st, failingSince = got, time.Time{}
					case apiclient.IsRetryable(err) && time.Since(failingSince) < 2*time.Minute:
						w.mu.Lock()
						w.repolled++
						w.mu.Unlock()
					default:
						w.fail(failingSince, fmt.Errorf("following %s: %w", id, err))
						st = ""
					}
				}
			}
		})
	}
	c := b.Client(t)
	w.wg.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			start := time.Now()
			var tasks, queues map[string]any
			err := c.Call(ctx, "", "tasks.get_all", map[string]any{"page": 0, "page_size": 10, "order_by": []string{"-last_update"},
				"only_fields": []string{"id", "name", "status"}}, &tasks, apiclient.Default)
			if err == nil {
				err = c.Call(ctx, "", "queues.get_all", map[string]any{"only_fields": []string{"id", "name"}}, &queues, apiclient.Default)
			}
			d := time.Since(start)
			w.mu.Lock()
			w.reads++
			w.slowest = max(w.slowest, d)
			w.mu.Unlock()
			if err != nil {
				w.fail(start, fmt.Errorf("listing: %w", err))
			}
		}
	})
	return w
}

// failure is a call that failed after its retries: made at start, given
// up at end.
type failure struct {
	err        error
	start, end time.Time
}

type window struct{ from, to time.Time }

func (w *worker) fail(start time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.surfaced = append(w.surfaced, failure{err, start, time.Now()})
}

// outage records a fault from..to that no call can get through.
func (w *worker) outage(from, to time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outages = append(w.outages, window{from, to})
}

// endedInOutage reports whether a failed call gave up during an outage.
func (w *worker) endedInOutage(f failure) bool {
	for _, o := range w.outages {
		if !f.end.Before(o.from) && !f.end.After(o.to) {
			return true
		}
	}
	return false
}

// finish stops the work, waits for every submitted task to end, and checks
// each ended completed with its 200 lines once, in order. It returns the
// number of tasks and of bad ones (lost or duplicated lines, or not
// completed).
func (w *worker) finish() (tasks, bad, lostLines, dupLines int) {
	t := w.t
	close(w.stop)
	w.wg.Wait()
	c := w.b.Client(t)
	for _, id := range w.ids {
		tk := waitStatus(t, c, id, 2*time.Minute, api.StatusCompleted, api.StatusFailed, api.StatusStopped)
		missing, dup, inOrder := checkSequence(numbered(logLines(t, c, id), "n "), "n ", 200)
		lostLines += missing
		dupLines += dup
		if tk.Status != api.StatusCompleted || missing > 0 || dup > 0 || !inOrder {
			bad++
			if bad <= 3 {
				t.Errorf("task %s: %s (%q), %d lines missing, %d duplicated, in order %v", id, tk.Status, tk.StatusReason, missing, dup, inOrder)
			}
		}
	}
	var kept []failure
	for _, f := range w.surfaced {
		if w.endedInOutage(f) {
			t.Logf("a call gave up during the outage (it started %v before it): %v", f.end.Sub(f.start).Round(time.Millisecond), f.err)
			w.excused++
			continue
		}
		if len(kept) < 5 {
			t.Errorf("a call failed after its retries: %v", f.err)
		}
		kept = append(kept, f)
	}
	w.surfaced = kept
	return len(w.ids), bad, lostLines, dupLines
}

// A rolling restart of the three replicas, one at a time, as in an
// upgrade, while daemons run tasks and a user lists them: no call fails
// after the client's retries, and every task completes with its whole log.
func TestClusterRollingRestart(t *testing.T) {
	b := bed(t)
	w := startWork(t, b, 2)
	var longest time.Duration
	for _, r := range b.Replicas {
		start := time.Now()
		// docker restart sends SIGTERM: the replica drains and exits.
		if err := b.Docker("restart", "-t", "20", r); err != nil {
			t.Fatal(err)
		}
		if err := b.WaitHealthy(r, 90*time.Second); err != nil {
			t.Fatal(err)
		}
		longest = max(longest, time.Since(start))
	}
	// Work after the last restart flows as before.
	c := b.Client(t)
	id, err := shTask(context.Background(), c, "after the upgrade", workQueue, "echo upgraded\n")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, time.Minute, api.StatusCompleted)
	tasks, bad, lost, dup := w.finish()
	t.Logf("RESULT scenario=rolling-restart faults=\"docker restart of each of 3 replicas in turn\" tasks=%d bad=%d lines-lost=%d lines-duplicated=%d surfaced=%d reads=%d slowest-read=%s longest-restart=%s",
		tasks, bad, lost, dup, len(w.surfaced), w.reads, w.slowest.Round(time.Millisecond), longest.Round(time.Millisecond))
	if tasks == 0 {
		t.Fatal("no task was submitted during the restarts")
	}
}

// PostgreSQL stopped and started again: every replica says not-ready on
// /healthz meanwhile, answers quickly with a retryable error, and recovers
// by itself; a client call made during the outage succeeds once the
// database is back, and work flows again.
func TestClusterPostgresRestart(t *testing.T) {
	b := bed(t)
	ctx := context.Background()
	c := b.Client(t)
	w := startWork(t, b, 1)
	stopping := time.Now()
	if err := b.Docker("stop", b.PG); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	allNotReady := func() bool {
		for _, r := range b.Replicas {
			if code, _ := b.Health(r, 3*time.Second); code == 200 {
				return false
			}
		}
		return true
	}
	if !testwait.For(30*time.Second, allNotReady) {
		t.Fatal("with PostgreSQL stopped a replica still says ready")
	}
	_, body := b.Health(b.Replicas[0], 3*time.Second)
	// A single attempt answers at once, with a status a client retries.
	start := time.Now()
	err := c.Call(ctx, "", "tasks.get_all", map[string]any{"page_size": 1}, nil, apiclient.Once)
	quick := time.Since(start)
	if err == nil || !apiclient.IsRetryable(err) || quick > 10*time.Second {
		t.Errorf("a call during the outage: %v after %v, want a retryable error at once", err, quick)
	}
	// A call that retries, as the daemons' final reports do, gets through.
	waiting := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		waiting <- c.Call(wctx, "", "tasks.get_all", map[string]any{"page_size": 1}, nil, apiclient.Final)
	}()
	if err := b.Docker("start", b.PG); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	for _, r := range b.Replicas {
		if err := b.WaitHealthy(r, 90*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ready := time.Since(healed)
	// From the stop (PostgreSQL refuses new sessions while it shuts down)
	// until the load balancer sends calls to a ready replica again, a call
	// with the default retries (about 10 s) fails if the outage outlasts
	// them, as it should (on a loaded machine the stop, its checkpoint and
	// the replicas' return took 11 s). The submitters' status polls and the
	// call made during the outage retry for longer and must get through;
	// that call's answer marks the outage's end: the load balancer notices
	// a replica is ready only at its next check of it, after the replica
	// says so.
	err = <-waiting
	w.outage(stopping, time.Now())
	if err != nil {
		t.Errorf("the call made during the outage failed: %v", err)
	}
	id, err := shTask(ctx, c, "after the database restart", workQueue, "echo back\n")
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, id, time.Minute, api.StatusCompleted)
	flowing := time.Since(healed)
	tasks, bad, lost, dup := w.finish()
	t.Logf("RESULT scenario=postgres-restart faults=\"docker stop, then start, of PostgreSQL (down %s)\" health=%q single-attempt=%s tasks=%d bad=%d lines-lost=%d lines-duplicated=%d surfaced=%d gave-up-in-outage=%d status-polls-repeated=%d replicas-ready=%s recovery=%s",
		healed.Sub(down).Round(time.Millisecond), body, quick.Round(time.Millisecond), tasks, bad, lost, dup, len(w.surfaced), w.excused, w.repolled, ready.Round(time.Millisecond), flowing.Round(time.Millisecond))
}

// One replica cut off from PostgreSQL only: it answers quickly with a
// retryable error and fails its health check, the load balancer sends the
// traffic elsewhere, nothing hangs, and the replica comes back by itself
// when the network does.
func TestClusterReplicaCutFromDatabase(t *testing.T) {
	b := bed(t)
	ctx := context.Background()
	victim := b.Replicas[0]
	w := startWork(t, b, 1)
	if err := b.Docker("network", "disconnect", b.DB, victim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !testwait.For(30*time.Second, func() bool { code, _ := b.Health(victim, 3*time.Second); return code != 200 }) {
		t.Error("the cut replica still says ready")
	}
	notReady := time.Since(start)
	// Asked directly, it answers with a retryable error within its
	// database deadline (15 s) at most.
	direct := b.ClientAt(t, b.ReplicaURL(victim))
	start = time.Now()
	err := direct.Call(ctx, "", "tasks.get_all", map[string]any{"page_size": 1}, nil, apiclient.Once)
	answered := time.Since(start)
	if err == nil || !apiclient.IsRetryable(err) || answered > 20*time.Second {
		t.Errorf("the cut replica answered %v after %v, want a retryable error within 20 s", err, answered)
	}
	// Calls through the balancer meanwhile all succeed, none slowly.
	c := b.Client(t)
	var slowest time.Duration
	for range 50 {
		s := time.Now()
		if err := c.Call(ctx, "", "tasks.get_all", map[string]any{"page_size": 5}, nil, apiclient.Default); err != nil {
			t.Errorf("through the balancer during the cut: %v", err)
		}
		slowest = max(slowest, time.Since(s))
	}
	if err := b.Docker("network", "connect", b.DB, victim); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if err := b.WaitHealthy(victim, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	recovery := time.Since(healed)
	tasks, bad, lost, dup := w.finish()
	t.Logf("RESULT scenario=replica-cut-from-db faults=\"docker network disconnect of one replica from the database network\" not-ready-after=%s direct-answer=%s (%v) slowest-through-balancer=%s tasks=%d bad=%d lines-lost=%d lines-duplicated=%d surfaced=%d recovery=%s",
		notReady.Round(time.Millisecond), answered.Round(time.Millisecond), err, slowest.Round(time.Millisecond), tasks, bad, lost, dup, len(w.surfaced), recovery.Round(time.Millisecond))
	if slowest > 20*time.Second {
		t.Errorf("a call through the balancer took %v", slowest)
	}
}
