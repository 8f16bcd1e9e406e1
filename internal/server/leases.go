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
// ErrLeaseLost, so one worker runs the task); without it (the reference
// agent, which calls tasks.started just after the pop), the task's current
// hand-out, unless another worker (X-ClearML-Worker) holds it.

// acknowledge settles the hand-out of t for a tasks.started of the caller.
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
	case l.State == store.LeaseHeld:
		return tx.SetLeaseState(t.ID, store.LeaseAcked)
	}
	return nil
}

// leaseSweep is how many expired hand-outs one transaction takes back.
const leaseSweep = 100

// ExpireLeases puts every task whose hand-out ran out without an
// acknowledgement back in its queue, at the place it was taken from, and
// says so in the task's log. It returns how many went back. Replicas may
// run it at once: each hand-out is taken back by one of them.
func (s *Server) ExpireLeases(ctx context.Context) (int, error) {
	total := 0
	for {
		var queues []string
		n := 0
		err := s.store.Update(ctx, func(tx store.Tx) error {
			queues, n = nil, 0
			due, err := tx.DueLeases(s.opts.Now(), leaseSweep)
			if err != nil {
				return err
			}
			for _, l := range due {
				n++
				if err := tx.SetLeaseState(l.TaskID, store.LeaseExpired); err != nil {
					return err
				}
				status, _, err := tx.TaskStatus(l.TaskID)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if status != api.StatusQueued {
					continue // stopped, reset or started meanwhile: nothing to give back
				}
				// A task that waits in a queue again (a Kubernetes
				// executor's pending queue, a new enqueue) is not lost.
				if qs, err := tx.TaskQueues(l.TaskID); err != nil || len(qs) > 0 {
					if err != nil {
						return err
					}
					continue
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
