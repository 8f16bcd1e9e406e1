package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// A task popped by queues.get_next_task is leased to the caller: the pop
// is final only once the worker's tasks.started acknowledges it, within
// Options.LeaseTimeout. Until then the task is in no queue; a lease that
// runs out puts it back where it was in its queue (RunLeases), so a
// hand-out whose answer never reached a worker (a daemon stopped behind a
// proxy during its long poll, a server killed after the commit, a daemon
// killed before it started the task) is not lost.
//
// tasks.started acknowledges: with our extension field lease, exactly
// that hand-out (a late acknowledgement of an expired one is refused with
// ErrLeaseLost, so one worker runs the task; a retried one, whose first
// answer was lost, is accepted for ackMemory); without it (the reference
// agent, which calls tasks.started just after the pop), the task's current
// hand-out, unless another worker (X-ClearML-Worker) holds it.

// ackMemory is how long an acknowledged hand-out is remembered: longer
// than a client retries a call whose answer it did not get.
const ackMemory = 10 * time.Minute

// acknowledge decides whether a tasks.started of the caller may start t;
// settleLease, run when the status changes, records the outcome.
func (s *Server) acknowledge(tx store.Tx, c *call, t *api.Task, leaseID string) error {
	l, err := tx.TaskLease(t.ID)
	if errors.Is(err, store.ErrNotFound) {
		if leaseID != "" {
			return api.ErrLeaseLost.New("no hand-out of this task is known", "task", t.ID)
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case leaseID != "" && (l.ID != leaseID || l.State == store.LeaseExpired):
		return api.ErrLeaseLost.New("", "task", t.ID)
	case leaseID == "" && l.State == store.LeaseHeld && t.Status == api.StatusQueued &&
		l.Worker != "" && c.worker != "" && l.Worker != c.worker:
		return api.ErrLeaseLost.New("the task is handed out to another worker", "task", t.ID, "worker", l.Worker)
	}
	return nil
}

// settleLease records what became of a task's hand-out when the task
// left the queued status: started, the hand-out is acknowledged (and a
// retry of that acknowledgement accepted); otherwise (stopped, reset,
// dequeued), or when it had been taken back, it is forgotten, and a late
// acknowledgement is refused.
func (s *Server) settleLease(tx store.Tx, t *api.Task) error {
	if t.Status == api.StatusInProgress {
		l, err := tx.TaskLease(t.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if l.State == store.LeaseHeld {
			return tx.AckLease(t.ID, s.opts.Now().Add(ackMemory))
		}
	}
	return tx.DropLease(t.ID)
}

// leaseSweep is how many expired hand-outs one transaction takes back.
const leaseSweep = 100

// ExpireLeases puts every task whose hand-out ran out without an
// acknowledgement back in its queue, at the place it was taken from, and
// says so in the task's log. It returns how many went back. Replicas may
// run it at once: each hand-out is taken back by one of them.
func (s *Server) ExpireLeases(ctx context.Context) (int, error) {
	total, first := 0, true
	for ; ; first = false {
		var queues []string
		n := 0
		err := s.store.Update(ctx, func(tx store.Tx) error {
			queues, n = nil, 0
			if first {
				// Acknowledgements past their memory go in the same
				// transaction: an idle sweep is one transaction.
				if _, err := tx.ForgetLeases(s.opts.Now()); err != nil {
					return err
				}
			}
			due, err := tx.DueLeases(s.opts.Now(), leaseSweep)
			if err != nil {
				return err
			}
			for _, l := range due {
				n++
				status, _, err := tx.TaskStatus(l.TaskID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				var qs []string
				if err == nil && status == api.StatusQueued {
					if qs, err = tx.TaskQueues(l.TaskID); err != nil {
						return err
					}
				}
				// Nothing to give back for a task deleted, stopped, reset
				// or started meanwhile, or one that waits in a queue again
				// (a Kubernetes executor's pending queue, a new enqueue).
				if err != nil || status != api.StatusQueued || len(qs) > 0 {
					if err := tx.DropLease(l.TaskID); err != nil {
						return err
					}
					continue
				}
				if err := tx.SetLeaseState(l.TaskID, store.LeaseExpired); err != nil {
					return err
				}
				back, err := tx.RestoreEntry(l)
				if err != nil {
					return err
				}
				if !back {
					continue
				}
				queues = append(queues, l.QueueID)
				if err := tx.AddEvent(s.leaseNote(l)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("taking back expired hand-outs: %w", err)
		}
		total += len(queues)
		for _, q := range queues {
			s.waker.wake(q)
		}
		if n < leaseSweep {
			return total, nil
		}
	}
}

// leaseNote is the task-log line saying the task went back to its queue.
func (s *Server) leaseNote(l store.Lease) *store.Event {
	who := l.Worker
	if who == "" {
		who = "a worker"
	}
	now := s.opts.Now()
	msg := fmt.Sprintf("clearml-agent server: the task was handed to %s at %s and not started within %s; "+
		"it is back at its place in queue %s", who, l.Until.Add(-s.opts.LeaseTimeout).Format(time.RFC3339), s.opts.LeaseTimeout, l.QueueID)
	doc, _ := json.Marshal(map[string]any{"type": "log", "task": l.TaskID, "timestamp": now.UnixMilli(), "level": "warning",
		"worker": "clearml-server", "msg": msg, "iter": 0, "metric": "", "variant": "", "model_event": false, "@timestamp": s.now()})
	return &store.Event{TaskID: l.TaskID, Type: "log", Timestamp: now.UnixMilli(), Doc: doc}
}

// RunLeases takes back expired hand-outs every interval (a quarter of the
// lease timeout, at most a second) until ctx is done.
func (s *Server) RunLeases(ctx context.Context) error {
	every := min(s.opts.LeaseTimeout/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.ExpireLeases(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("hand-outs: taking back expired ones", "err", err)
		} else if n > 0 {
			s.log.Info("tasks handed out but never started went back to their queues", slog.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
