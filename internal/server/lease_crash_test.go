package server_test

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// TestServerKillsStrandNoTask: workers take tasks from a server process
// (queues.get_next_task, then tasks.started naming the hand-out, then
// tasks.completed) while the server is killed with SIGKILL at random
// moments, six times, and started again on the same data. A hand-out
// whose answer died with the server is taken back when its 1 s lease runs
// out. In the end every task ran to completion, and exactly once: one
// hand-out of each task was acknowledged.
func TestServerKillsStrandNoTask(t *testing.T) {
	if testing.Short() {
		t.Skip("long: kills and restarts server processes under load")
	}
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			extra := []string{"--lease-timeout", "1s"}
			if backend == "postgres" {
				extra = append(extra, "--db", pgtest.NewDatabase(t))
			}
			dir := filepath.Join(t.TempDir(), "data")
			h := &handOuts{acked: map[string]map[string]bool{}, completed: map[string]bool{}}
			s := testbin.StartServer(t, dir, extra...)
			pc := newProcClient(t, s)
			var queue struct{ ID string }
			if err := pc.call("queues.get_default", nil, &queue); err != nil {
				t.Fatal(err)
			}
			const total = 150
			var ids []string
			for range total {
				var res api.IDResponse
				if err := pc.call("tasks.create", map[string]any{"name": "lease crash task", "type": "training"}, &res); err != nil {
					t.Fatal(err)
				}
				if err := pc.call("tasks.enqueue", map[string]any{"task": res.ID, "queue": queue.ID}, nil); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, res.ID)
			}
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			for round := range 6 {
				killAt := int64(3 + rng.IntN(12))
				h.work(pc, queue.ID, func(popped int64) bool {
					if popped == killAt {
						syscall.Kill(s.Pid(), syscall.SIGKILL)
					}
					return false
				})
				if len(h.completedIDs()) == total {
					t.Fatalf("round %d: every task ran before the kills were over; make the load larger", round)
				}
				s = testbin.StartServer(t, dir, extra...)
				pc = newProcClient(t, s)
			}
			// The last server lives: the workers take what is left,
			// including the hand-outs lost with the killed servers.
			ok := testwait.For(3*time.Minute, func() bool {
				h.work(pc, queue.ID, func(int64) bool { return true })
				return len(h.completedIDs()) == total
			})
			if !ok {
				t.Fatalf("%d of %d tasks completed; the others are stranded\n%s", len(h.completedIDs()), total, strandedReport(t, pc, ids, h))
			}
			back := 0
			for _, id := range ids {
				if n := len(h.acked[id]); n != 1 {
					t.Errorf("task %s: %d hand-outs acknowledged, want 1", id, n)
				}
				if strings.Contains(taskLog(t, pc, id), "not started within") {
					back++
				}
			}
			t.Logf("%s: %d tasks, 6 kills; %d hand-outs went back to the queue when their lease ran out, %d late acknowledgements refused",
				backend, total, back, h.refused.Load())
		})
	}
}

// handOuts is what the workers of TestServerKillsStrandNoTask did.
type handOuts struct {
	mu        sync.Mutex
	acked     map[string]map[string]bool // task -> leases acknowledged with a 200
	completed map[string]bool
	pending   []pendingAck // acknowledgements whose answer was lost
	refused   atomic.Int64
}

type pendingAck struct{ task, lease string }

func (h *handOuts) completedIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id := range h.completed {
		out = append(out, id)
	}
	return out
}

// work runs four workers against pc until the server stops answering or
// the queue is empty; after each acknowledged pop, stop(pops so far) says
// whether to stop early. Acknowledgements lost earlier are retried first.
func (h *handOuts) work(pc *procClient, queue string, stop func(int64) bool) {
	h.mu.Lock()
	retry := h.pending
	h.pending = nil
	h.mu.Unlock()
	for _, p := range retry {
		if !h.finish(pc, p) {
			return
		}
	}
	var popped atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				var next api.GetNextTaskResponse
				if err := pc.call("queues.get_next_task", map[string]any{"queue": queue, "wait_ms": 50}, &next); err != nil {
					return // the server is gone
				}
				if next.Entry == nil {
					return
				}
				if next.Lease == nil {
					panic("hand-out without a lease")
				}
				if !h.finish(pc, pendingAck{next.Entry.Task, next.Lease.ID}) {
					return
				}
				if stop(popped.Add(1)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// finish acknowledges a hand-out and completes the task; false when the
// server went away (the acknowledgement is then retried by the next work).
func (h *handOuts) finish(pc *procClient, p pendingAck) bool {
	m, _, err := pc.callMeta("tasks.started", map[string]any{"task": p.task, "force": true, "lease": p.lease})
	if err == nil && m.ResultCode == 400 && m.ResultSubcode == api.ErrLeaseLost.Subcode {
		h.refused.Add(1)
		return true // someone else's now, or back in the queue
	}
	if err == nil && m.ResultCode != 200 {
		err = errors.New(m.ResultMsg)
	}
	if err == nil {
		h.mu.Lock()
		if h.acked[p.task] == nil {
			h.acked[p.task] = map[string]bool{}
		}
		h.acked[p.task][p.lease] = true
		h.mu.Unlock()
		m, _, err = pc.callMeta("tasks.completed", map[string]any{"task": p.task, "force": true})
		if err == nil && m.ResultCode == 200 {
			h.mu.Lock()
			h.completed[p.task] = true
			h.mu.Unlock()
			return true
		}
	}
	h.mu.Lock()
	h.pending = append(h.pending, p)
	h.mu.Unlock()
	return false
}

func taskLog(t *testing.T, pc *procClient, task string) string {
	t.Helper()
	var got struct{ Events []struct{ Msg string } }
	if err := pc.call("events.get_task_log", map[string]any{"task": task, "batch_size": 100}, &got); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range got.Events {
		b.WriteString(e.Msg + "\n")
	}
	return b.String()
}

// strandedReport lists the tasks that did not complete, with their status.
func strandedReport(t *testing.T, pc *procClient, ids []string, h *handOuts) string {
	var b strings.Builder
	done := map[string]bool{}
	for _, id := range h.completedIDs() {
		done[id] = true
	}
	for _, id := range ids {
		if done[id] {
			continue
		}
		var got struct{ Task struct{ Status string } }
		pc.call("tasks.get_by_id", map[string]any{"task": id}, &got)
		b.WriteString(id + " " + got.Task.Status + "\n")
	}
	return b.String()
}
