package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// queueTally is what the producers and consumers of a queue saw.
type queueTally struct {
	mu        sync.Mutex
	acked     map[string]bool // enqueues the server acknowledged
	unacked   []error         // enqueues that failed (the task may still be queued)
	handedOut map[string]int  // get_next_task answers naming the task
	started   map[string]int  // hand-outs acknowledged by tasks.started
	leaseLost int             // acknowledgements refused: the hand-out had expired
	surfaced  []error         // calls that failed after the client's retries
}

func (q *queueTally) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.surfaced = append(q.surfaced, err)
}

// One replica killed (docker kill) while 1,000 tasks are enqueued and
// dequeued through the load balancer by four producers and four consumers
// that acknowledge each hand-out as a daemon does: no acknowledged enqueue
// is lost, no task is started twice, every task ends.
func TestClusterReplicaKilledDuringQueueWork(t *testing.T) {
	b := bed(t)
	ctx := context.Background()
	c := b.Client(t)
	queue, err := c.CreateQueue(ctx, fmt.Sprintf("kill-%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	const total, killAt = 1000, 300
	victim := b.Replicas[1]
	q := &queueTally{acked: map[string]bool{}, handedOut: map[string]int{}, started: map[string]int{}}
	var next atomic.Int64
	var killedAt atomic.Int64 // unix ns
	var work sync.WaitGroup
	producersDone := make(chan struct{})
	var producers sync.WaitGroup
	for range 4 {
		pc := b.Client(t)
		producers.Go(func() {
			for {
				n := next.Add(1)
				if n > total {
					return
				}
				if n == killAt {
					work.Go(func() {
						if err := b.Docker("kill", victim); err != nil {
							q.fail(err)
						}
						killedAt.Store(time.Now().UnixNano())
					})
				}
				id, err := createEnqueued(ctx, pc, fmt.Sprintf("kill %d", n), queue)
				q.mu.Lock()
				if err == nil {
					q.acked[id] = true
				} else {
					q.unacked = append(q.unacked, err)
				}
				q.mu.Unlock()
			}
		})
	}
	work.Go(func() { producers.Wait(); close(producersDone) })
	// allStarted: every acknowledged enqueue was started.
	allStarted := func() bool {
		select {
		case <-producersDone:
		default:
			return false
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		for id := range q.acked {
			if q.started[id] == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(3 * time.Minute)
	var doneMu sync.Mutex
	var doneAt []time.Time // completions, in order
	for range 4 {
		cc := b.Client(t)
		work.Go(func() {
			for !allStarted() && time.Now().Before(deadline) {
				e, err := cc.GetNextTask(ctx, queue, 500)
				if err != nil {
					q.fail(fmt.Errorf("get_next_task: %w", err))
					continue
				}
				if e == nil {
					continue
				}
				q.mu.Lock()
				q.handedOut[e.Task]++
				q.mu.Unlock()
				err = cc.Started(ctx, e.Task, "cluster test", e.Lease, apiclient.Default)
				if api.ErrLeaseLost.Is(err) {
					q.mu.Lock()
					q.leaseLost++
					q.mu.Unlock()
					continue
				}
				if err != nil {
					q.fail(fmt.Errorf("started %s: %w", e.Task, err))
					continue
				}
				q.mu.Lock()
				q.started[e.Task]++
				q.mu.Unlock()
				if err := cc.SetStatus(ctx, "tasks.completed", e.Task, false, "", "done", apiclient.Default); err != nil {
					q.fail(fmt.Errorf("completed %s: %w", e.Task, err))
				}
				doneMu.Lock()
				doneAt = append(doneAt, time.Now())
				doneMu.Unlock()
			}
		})
	}
	start := time.Now()
	work.Wait()
	elapsed := time.Since(start)
	if err := b.Docker("start", victim); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitHealthy(victim, 90*time.Second); err != nil {
		t.Fatal(err)
	}

	// Recovery: the longest pause in completions from the kill on.
	var recovery time.Duration
	for i := 1; i < len(doneAt); i++ {
		if doneAt[i].UnixNano() >= killedAt.Load() {
			recovery = max(recovery, doneAt[i].Sub(doneAt[i-1]))
		}
	}
	lost, twice := 0, 0
	for id := range q.acked {
		if q.started[id] == 0 {
			lost++
		}
	}
	for _, n := range q.started {
		if n > 1 {
			twice++
		}
	}
	handedTwice := 0
	for _, n := range q.handedOut {
		if n > 1 {
			handedTwice++
		}
	}
	// Every acknowledged task ended: read their statuses back.
	notEnded := 0
	var ids []string
	for id := range q.acked {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		page := ids[:min(200, len(ids))]
		ids = ids[len(page):]
		var resp struct {
			Tasks []struct{ ID, Status string } `json:"tasks"`
		}
		if err := c.Call(ctx, "", "tasks.get_all", map[string]any{"id": page, "only_fields": []string{"id", "status"}}, &resp, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		for _, tk := range resp.Tasks {
			if tk.Status != api.StatusCompleted {
				notEnded++
			}
		}
		if len(resp.Tasks) != len(page) {
			notEnded += len(page) - len(resp.Tasks)
		}
	}
	t.Logf("RESULT scenario=replica-killed faults=\"docker kill of 1 of 3 replicas after %d enqueues\" acked=%d unacked=%d lost=%d started-twice=%d handed-out-again=%d lease-refused=%d not-ended=%d surfaced=%d elapsed=%s longest-pause-after-kill=%s",
		killAt, len(q.acked), len(q.unacked), lost, twice, handedTwice, q.leaseLost, notEnded, len(q.surfaced), elapsed.Round(time.Millisecond), recovery.Round(time.Millisecond))
	if killedAt.Load() == 0 {
		t.Fatal("the replica was never killed")
	}
	if lost > 0 || twice > 0 || notEnded > 0 {
		t.Errorf("%d acknowledged enqueues never started, %d tasks started twice, %d not completed", lost, twice, notEnded)
	}
	if len(q.acked) < total-10 {
		t.Errorf("only %d of %d enqueues acknowledged (%d failed): the load balancer should send them to the live replicas", len(q.acked), total, len(q.unacked))
	}
	for _, err := range q.unacked {
		t.Logf("an enqueue failed: %v", err)
	}
	for i, err := range q.surfaced {
		if i < 5 {
			t.Errorf("a call failed after its retries: %v", err)
		}
	}
}

// createEnqueued creates a task (a plain one: nobody runs it) and enqueues
// it by queue id.
func createEnqueued(ctx context.Context, c *apiclient.Client, name, queue string) (string, error) {
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": name, "type": "testing"}, &created, apiclient.Default); err != nil {
		return "", err
	}
	return created.ID, c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue": queue}, nil, apiclient.Default)
}
