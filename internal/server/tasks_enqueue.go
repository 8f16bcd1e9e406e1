package server

import (
	"context"
	"errors"
	"slices"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func tasksEnqueue(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Queue != "" && req.QueueName != "" {
		return nil, api.ErrValidation.New("queue and queue_name cannot be both passed")
	}
	resp, done, err := s.enqueueUnlocked(c, &req)
	if !done {
		resp, err = s.enqueueLocked(c, &req)
	}
	if err != nil {
		return nil, err
	}
	resp["queued"], resp["updated"] = 1, 1
	return resp, nil
}

// enqueueLocked is tasks.enqueue in one transaction, the task's row locked
// from its read to its write.
func (s *Server) enqueueLocked(c *call, req *api.StatusChangeRequest) (map[string]any, error) {
	resp := map[string]any{}
	var queueID string
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		q, err := s.resolveEnqueueQueue(tx, c, req.Queue, req.QueueName)
		if err != nil {
			return err
		}
		queueID = q.ID
		fields, err := s.markQueued(c, t, req, q.ID)
		if err != nil {
			if req.Queue != "" {
				// A queue given by id is checked by the entry's insert;
				// an invalid one is the error to report first.
				if qerr := s.checkQueue(tx, c, req.Queue); qerr != nil {
					return qerr
				}
			}
			return err
		}
		added, err := tx.EnqueueEntry(q.ID, c.ident.Company, t.ID, s.now())
		if errors.Is(err, store.ErrNotFound) {
			return api.ErrInvalidQueueID.New("", "id", q.ID)
		}
		if err != nil {
			return err
		}
		if !added {
			return api.ErrTaskAlreadyQueued.New("", "task", t.ID, "queue", q.ID)
		}
		resp["fields"] = fields
		if req.VerifyWatchedQueue {
			resp["queue_watched"], err = s.queueWatched(tx, c, q.ID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.waker.wake(queueID)
	return resp, nil
}

// unlockedEnqueuer writes an enqueue without a transaction held open
// between the task's read and its write (the store on PostgreSQL: two
// round trips instead of five; see store/optimistic.go).
type unlockedEnqueuer interface {
	TaskVersion(ctx context.Context, id string) (*api.Task, string, error)
	EnqueueTask(ctx context.Context, task *api.Task, version, queueID, company string, added api.Time) (store.EnqueueOutcome, error)
}

// maxUnlockedAttempts bounds how often enqueueUnlocked reads a task again
// that changed under it before it leaves the enqueue to a transaction.
const maxUnlockedAttempts = 3

// enqueueUnlocked is tasks.enqueue to a queue given by id on a store that
// can write it without holding the task's row: the task is read, changed
// here as enqueueLocked changes it, and written with its entry only if no
// one wrote it in between (else read again). done is false where the
// store cannot, or the task kept changing: the caller then enqueues in a
// transaction. Answers and errors are enqueueLocked's.
func (s *Server) enqueueUnlocked(c *call, req *api.StatusChangeRequest) (resp map[string]any, done bool, err error) {
	st, ok := s.store.(unlockedEnqueuer)
	if !ok || req.Task == "" || req.Queue == "" {
		return nil, false, nil
	}
	for range maxUnlockedAttempts {
		t, version, err := st.TaskVersion(c.ctx, req.Task)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return nil, false, nil
		case errors.Is(err, store.ErrNotFound) || (err == nil && t.Company != c.ident.Company && t.Company != ""):
			return nil, true, api.ErrInvalidTaskID.New("", "id", req.Task)
		case err != nil:
			return nil, true, err
		}
		fields, err := s.markQueued(c, t, req, req.Queue)
		if err != nil {
			if qerr := s.store.View(c.ctx, func(tx store.Tx) error { return s.checkQueue(tx, c, req.Queue) }); qerr != nil {
				return nil, true, qerr
			}
			return nil, true, err
		}
		out, err := st.EnqueueTask(c.ctx, t, version, req.Queue, c.ident.Company, s.now())
		if err != nil {
			return nil, true, err
		}
		switch out {
		case store.EnqueueStale:
			continue
		case store.EnqueueBadQueue:
			return nil, true, api.ErrInvalidQueueID.New("", "id", req.Queue)
		case store.EnqueueAlreadyThere:
			return nil, true, api.ErrTaskAlreadyQueued.New("", "task", t.ID, "queue", req.Queue)
		case store.EnqueueNeedsTransaction:
			return nil, false, nil
		}
		// Whoever waits for this task's status or this queue looks again.
		s.waker.wake(taskWakeKey(req.Task))
		s.waker.wake(req.Queue)
		resp = map[string]any{"fields": fields}
		if req.VerifyWatchedQueue {
			err = s.store.View(c.ctx, func(tx store.Tx) error {
				var err error
				resp["queue_watched"], err = s.queueWatched(tx, c, req.Queue)
				return err
			})
		}
		return resp, true, err
	}
	return nil, false, nil
}

// markQueued sets a task being enqueued to queued, with the status it is
// enqueued from and, unless the request says not to, its execution queue;
// it returns the fields changed, for the answer.
func (s *Server) markQueued(c *call, t *api.Task, req *api.StatusChangeRequest, queueID string) (map[string]any, error) {
	prev := t.Status
	fields, err := s.setStatus(c, t, api.StatusQueued, req.Force, req.StatusReason, req.StatusMessage)
	if err != nil {
		return nil, err
	}
	if prev != api.StatusQueued || t.EnqueueStatus == "" {
		if prev == api.StatusQueued {
			prev = api.StatusCreated
		}
		t.EnqueueStatus = prev
	}
	if req.UpdateExecutionQueue == nil || *req.UpdateExecutionQueue {
		if t.Execution == nil {
			t.Execution = map[string]any{}
		}
		t.Execution["queue"] = queueID
		fields["execution.queue"] = queueID
	}
	fields["enqueue_status"] = t.EnqueueStatus
	return fields, nil
}

// queueWatched says whether a worker of the caller's company listens to
// the queue (verify_watched_queue).
func (s *Server) queueWatched(tx store.Tx, c *call, queueID string) (bool, error) {
	workers, err := tx.Workers(c.ident.Company, s.opts.Now())
	if err != nil {
		return false, err
	}
	for _, w := range workers {
		if slices.Contains(w.Queues, queueID) {
			return true, nil
		}
	}
	return false, nil
}

// resolveEnqueueQueue finds the queue of an enqueue: by id (not checked
// here: the entry's insert checks it, in the same statement on
// PostgreSQL), by name (created when missing), or the default queue.
func (s *Server) resolveEnqueueQueue(tx store.Tx, c *call, id, name string) (*api.Queue, error) {
	switch {
	case id != "":
		return &api.Queue{ID: id}, nil
	case name != "":
		queues, err := tx.Queues(c.ident.Company)
		if err != nil {
			return nil, err
		}
		for _, q := range queues {
			if q.Name == name {
				return q, nil
			}
		}
		q, err := s.newQueue(c, api.QueueCreateRequest{Name: name})
		if err != nil {
			return nil, err
		}
		ok, err := tx.InsertQueue(q)
		if err != nil {
			return nil, err // a store failure, not a duplicate name
		}
		if !ok {
			return nil, api.ErrExpectedUniqueData.New("", "name", name)
		}
		return q, nil
	default:
		return s.defaultQueue(tx, c)
	}
}
