package server

import (
	"errors"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// maxWait caps the long-poll extension of queues.get_next_task.
const maxWait = 60 * time.Second

// repollInterval bounds how long a long-poll waits without looking at the
// database again: enqueues through another server replica do not wake it.
const repollInterval = time.Second

func queuesGetNextTask(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Queue == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "queue")
	}
	wait := min(time.Duration(req.WaitMS)*time.Millisecond, maxWait)
	deadline := time.Now().Add(wait)
	for {
		woken := s.waker.watch(req.Queue)
		resp, err := s.popNext(c, &req)
		if err != nil || resp.Entry != nil || wait <= 0 {
			return resp, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return resp, nil
		}
		t := time.NewTimer(min(left, repollInterval))
		s.waker.waiting(req.Queue)
		select {
		case <-woken:
		case <-t.C:
		case <-s.draining:
			t.Stop()
			return resp, nil
		case <-c.ctx.Done():
			t.Stop()
			return resp, nil
		}
		t.Stop()
	}
}

// popNext takes the head of a queue. A task found stopped (an abort raced
// with the enqueue) is set back to queued; entries of deleted tasks are
// dropped.
func (s *Server) popNext(c *call, req *api.QueueTaskRequest) (*api.GetNextTaskResponse, error) {
	resp := &api.GetNextTaskResponse{}
	// An empty queue is the common case of an idle poller: answer it from a
	// read without taking the write lock. A queue whose last pop here found
	// a task is likely to have another: it goes to the write at once.
	busy := s.busyQueues.has(req.Queue)
	if !busy {
		var empty bool
		err := s.store.View(c.ctx, func(tx store.Tx) error {
			if err := s.checkQueue(tx, c, req.Queue); err != nil {
				return err
			}
			head, err := tx.Entries(req.Queue, 1)
			empty = len(head) == 0 || (req.Task != "" && head[0].Task != req.Task)
			return err
		})
		if err != nil || empty {
			return resp, err
		}
	}
	var err error
	if req.Task == "" && !req.GetTaskInfo {
		err = s.leaseHead(c, req.Queue, resp)
	} else {
		err = s.popLocked(c, req, resp)
	}
	s.busyQueues.set(req.Queue, err == nil && resp.Entry != nil)
	return resp, err
}

// leaseHead is the common pop (no task named, no owner asked for): the
// head is taken and leased by one statement in a transaction of its own;
// the rare follow-ups (the task is gone, or was stopped since its enqueue)
// take transactions of their own.
func (s *Server) leaseHead(c *call, queue string, resp *api.GetNextTaskResponse) error {
	for {
		lease := store.Lease{ID: newID(), Worker: c.worker, Until: s.opts.Now().Add(s.opts.LeaseTimeout)}
		e, status, err := s.store.LeaseHead(c.ctx, queue, c.ident.Company, lease)
		if err != nil {
			return err
		}
		if e == nil {
			return s.store.View(c.ctx, func(tx store.Tx) error { return s.checkQueue(tx, c, queue) })
		}
		switch status {
		case "": // the task is gone: its hand-out goes too
			if err := s.store.Update(c.ctx, func(tx store.Tx) error { return tx.DropLease(e.Task) }); err != nil {
				return err
			}
			continue
		case api.StatusStopped:
			if err := s.requeueStopped(c, e.Task); err != nil {
				return err
			}
		}
		resp.Entry = e
		resp.Lease = &api.Lease{ID: lease.ID, TimeoutSec: s.opts.LeaseTimeout.Seconds()}
		return nil
	}
}

// requeueStopped sets a task that was stopped after its enqueue back to
// queued, as it is handed out (an abort that raced with the enqueue).
func (s *Server) requeueStopped(c *call, taskID string) error {
	return s.store.Update(c.ctx, func(tx store.Tx) error {
		t, err := tx.Task(taskID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || t.Status != api.StatusStopped {
			return err
		}
		if _, err := s.setStatus(c, t, api.StatusQueued, true, "", ""); err != nil {
			return err
		}
		return tx.PutTask(t)
	})
}

// popLocked pops in one transaction that keeps the task's row locked: for
// a pop of a named task, or one that reads the task's owner.
func (s *Server) popLocked(c *call, req *api.QueueTaskRequest, resp *api.GetNextTaskResponse) error {
	return s.store.Update(c.ctx, func(tx store.Tx) error {
		*resp = api.GetNextTaskResponse{}
		for {
			if req.Task != "" {
				if err := s.checkQueue(tx, c, req.Queue); err != nil {
					return err
				}
				head, err := tx.Entries(req.Queue, 1)
				if err != nil || len(head) == 0 || head[0].Task != req.Task {
					return err
				}
			}
			// The queue's company is checked by the pop itself; only an
			// empty answer needs telling apart from a queue not the
			// caller's.
			lease := store.Lease{ID: newID(), Worker: c.worker, Until: s.opts.Now().Add(s.opts.LeaseTimeout)}
			e, status, err := tx.LeaseHead(req.Queue, c.ident.Company, lease)
			if err != nil {
				return err
			}
			if e == nil {
				return s.checkQueue(tx, c, req.Queue)
			}
			if status == "" { // the task is gone: its entry and hand-out go too
				if err := tx.DropLease(e.Task); err != nil {
					return err
				}
				continue
			}
			if status == api.StatusStopped || req.GetTaskInfo {
				t, err := tx.Task(e.Task)
				if err != nil {
					return err
				}
				if t.Status == api.StatusStopped {
					if _, err := s.setStatus(c, t, api.StatusQueued, true, "", ""); err != nil {
						return err
					}
					if err := tx.PutTask(t); err != nil {
						return err
					}
				}
				if req.GetTaskInfo {
					info := map[string]any{"company": t.Company, "user": t.User}
					resp.TaskInfo = &info
				}
			}
			resp.Entry = e
			resp.Lease = &api.Lease{ID: lease.ID, TimeoutSec: s.opts.LeaseTimeout.Seconds()}
			return nil
		}
	})
}

// queueSet is a set of queue ids, safe for concurrent use, bounded: it
// forgets everything when it would pass maxBusyQueues.
type queueSet struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

const maxBusyQueues = 10000

func (q *queueSet) has(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.ids[id]
	return ok
}

func (q *queueSet) set(id string, in bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !in {
		delete(q.ids, id)
		return
	}
	if q.ids == nil || len(q.ids) >= maxBusyQueues {
		q.ids = map[string]struct{}{}
	}
	q.ids[id] = struct{}{}
}

// queueWaker wakes long-polling get_next_task calls when a task is added
// to their queue in this process.
type queueWaker struct {
	mu sync.Mutex
	ch map[string]chan struct{}
	// onWait, when set (by tests), is called when a long poll found its
	// queue empty and waits for a wake.
	onWait func(queue string)
}

func (w *queueWaker) waiting(queue string) {
	w.mu.Lock()
	f := w.onWait
	w.mu.Unlock()
	if f != nil {
		f(queue)
	}
}

func newQueueWaker() *queueWaker { return &queueWaker{ch: map[string]chan struct{}{}} }

// watch returns a channel closed at the next wake of queue.
func (w *queueWaker) watch(queue string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.ch[queue]
	if !ok {
		ch = make(chan struct{})
		w.ch[queue] = ch
	}
	return ch
}

func (w *queueWaker) wake(queue string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.ch[queue]; ok {
		close(ch)
		delete(w.ch, queue)
	}
}
