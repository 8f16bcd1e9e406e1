package server

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// transitions lists the status changes allowed without force (spec 3.2). A
// change to the current status is always allowed.
var transitions = map[string][]string{
	api.StatusCreated:    {api.StatusQueued, api.StatusInProgress},
	api.StatusQueued:     {api.StatusCreated, api.StatusInProgress, api.StatusStopped},
	api.StatusInProgress: {api.StatusCreated, api.StatusStopped, api.StatusFailed, api.StatusCompleted},
	api.StatusStopped: {api.StatusCreated, api.StatusQueued, api.StatusInProgress, api.StatusFailed,
		api.StatusCompleted, api.StatusClosed, api.StatusPublishing, api.StatusPublished},
	api.StatusClosed:     {api.StatusCreated, api.StatusStopped, api.StatusFailed, api.StatusPublishing, api.StatusPublished},
	api.StatusFailed:     {api.StatusCreated, api.StatusQueued, api.StatusStopped, api.StatusPublished},
	api.StatusCompleted:  {api.StatusCreated, api.StatusInProgress, api.StatusPublished},
	api.StatusPublishing: {api.StatusPublished},
}

var allStatuses = []string{api.StatusCreated, api.StatusQueued, api.StatusInProgress, api.StatusStopped,
	api.StatusPublished, api.StatusPublishing, api.StatusClosed, api.StatusFailed, api.StatusCompleted, api.StatusUnknown}

func transitionAllowed(from, to string) bool {
	return from == to || slices.Contains(transitions[from], to)
}

// setStatus changes a task's status under the transition rules and returns
// the update response's fields.
func (s *Server) setStatus(c *call, t *api.Task, to string, force bool, reason, message string) (map[string]any, error) {
	if !force && !transitionAllowed(t.Status, to) {
		return nil, api.ErrInvalidTaskStatus.New("Invalid status change", "current_status", t.Status, "new_status", to)
	}
	now := s.now()
	t.Status, t.StatusReason, t.StatusMessage = to, reason, message
	t.StatusChanged, t.LastUpdate, t.LastChange = &now, &now, &now
	t.LastChangedBy = c.ident.User
	if to == api.StatusQueued {
		t.SystemTags = removeString(t.SystemTags, "development")
	}
	return map[string]any{
		"status": to, "status_reason": reason, "status_message": message,
		"status_changed": now, "last_update": now, "last_change": now, "last_changed_by": c.ident.User,
	}, nil
}

func removeString(list []string, v string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// withTask runs fn on a locked task of the caller's company inside a write
// transaction and stores the task afterwards. notFound is the error for a
// missing task (most endpoints use invalid_task_id, tasks.started invalid_id).
func (s *Server) withTask(c *call, id string, notFound api.ErrorCode, fn func(tx store.Tx, t *api.Task) error) error {
	if id == "" {
		return api.ErrMissingRequiredFields.New("", "field", "task")
	}
	// Whoever waits for this task's status (tasks.wait_status) looks again
	// once the change is committed.
	defer s.waker.wake(taskWakeKey(id))
	return s.store.Update(c.ctx, func(tx store.Tx) error {
		t, err := s.getTask(tx, c, id, notFound)
		if err != nil {
			return err
		}
		prev := t.Status
		if err := fn(tx, t); err != nil {
			return err
		}
		if err := leaveQueues(tx, t, prev); err != nil {
			return err
		}
		// A hand-out still waiting is settled: the task is no longer
		// queued, so it must not go back to its queue when the lease
		// runs out.
		if prev == api.StatusQueued && t.Status != prev {
			if err := s.settleLease(tx, t); err != nil {
				return fmt.Errorf("settling the task's hand-out: %w", err)
			}
		}
		return tx.PutTask(t)
	})
}

// leaveQueues keeps "a task waits in a queue only while it is queued": a
// task whose status changed from prev to anything but queued leaves every
// queue, in the transaction that changed the status. (The reverse does not
// hold: queues.get_next_task pops a task and leaves it queued until the
// agent starts it.)
func leaveQueues(tx store.Tx, t *api.Task, prev string) error {
	if t.Status == prev || t.Status == api.StatusQueued {
		return nil
	}
	if _, err := tx.RemoveTaskEntries(t.ID, ""); err != nil {
		return fmt.Errorf("removing task from its queues: %w", err)
	}
	return nil
}

func (s *Server) getTask(tx store.Tx, c *call, id string, notFound api.ErrorCode) (*api.Task, error) {
	t, err := tx.Task(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Company != c.ident.Company && t.Company != "") {
		return nil, notFound.New("", "id", id)
	}
	return t, err
}

// statusEndpoint serves tasks.started/stopped/failed/completed/close.
func statusEndpoint(to string) handlerFunc {
	return func(s *Server, c *call) (any, error) {
		var req api.StatusChangeRequest
		if err := c.decode(&req); err != nil {
			return nil, err
		}
		notFound := api.ErrInvalidTaskID
		if to == api.StatusInProgress {
			notFound = api.ErrInvalidID
		}
		resp := map[string]any{}
		err := s.withTask(c, req.Task, notFound, func(tx store.Tx, t *api.Task) error {
			if to == api.StatusInProgress {
				if err := s.acknowledge(tx, c, t, req.Lease); err != nil {
					return err
				}
			}
			prev, prevStarted := t.Status, t.Started
			fields, err := s.setStatus(c, t, to, req.Force, req.StatusReason, req.StatusMessage)
			if err != nil {
				return err
			}
			now := s.now()
			switch to {
			case api.StatusInProgress:
				if prev == api.StatusInProgress && prevStarted != nil {
					t.Started = prevStarted
				} else {
					t.Started, t.Completed, t.ActiveDuration = &now, nil, nil
				}
				fields["started"] = *t.Started
				resp["started"] = 1
			case api.StatusStopped, api.StatusFailed, api.StatusCompleted:
				t.Completed = &now
				fields["completed"] = now
				s.refreshDuration(t, now)
				result := "failure"
				if to == api.StatusCompleted {
					result = "success"
				}
				if t.Output == nil {
					t.Output = map[string]any{}
				}
				t.Output["result"] = result
			}
			if to == api.StatusCompleted {
				resp["published"] = 0
				if req.Publish {
					if _, err := s.setStatus(c, t, api.StatusPublished, true, req.StatusReason, req.StatusMessage); err != nil {
						return err
					}
					t.Published = &now
					fields["status"], fields["published"] = api.StatusPublished, now
					resp["published"] = 1
					if err := s.publishOutputModel(tx, c, t); err != nil {
						return err
					}
				}
			}
			resp["fields"] = fields
			return nil
		})
		if err != nil {
			return nil, err
		}
		resp["updated"] = 1
		return resp, nil
	}
}

// refreshDuration sets active_duration for a task that ran.
func (s *Server) refreshDuration(t *api.Task, now api.Time) {
	if t.Started != nil {
		d := int64(now.Sub(t.Started.Time) / time.Second)
		t.ActiveDuration = &d
	}
}

func tasksPublish(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var fields map[string]any
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		var err error
		if fields, err = s.publishTask(c, t, req.Force, req.StatusReason, req.StatusMessage); err != nil {
			return err
		}
		if req.PublishModel == nil || *req.PublishModel {
			err = s.publishOutputModel(tx, c, t)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1, "fields": fields, "committed_versions_results": []any{}}, nil
}

// tasksStop is the abort request (spec 3.3): a task run by a live worker
// only gets status_message "stopping"; the worker then stops it.
func tasksStop(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var fields map[string]any
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		live := t.LastWorker != "" && t.LastUpdate != nil &&
			s.opts.Now().Sub(t.LastUpdate.Time) < s.opts.TaskUpdateTimeout
		if t.Status == api.StatusQueued || slices.Contains(t.SystemTags, "development") || !live || t.Status != api.StatusInProgress {
			// Also a task that is stopped already: a stopped task never
			// waits in a queue.
			if _, err := tx.RemoveTaskEntries(t.ID, ""); err != nil {
				return err
			}
			var err error
			fields, err = s.setStatus(c, t, api.StatusStopped, req.Force, req.StatusReason, "Stopped by "+c.ident.UserName)
			if err == nil {
				now := s.now()
				t.Completed = &now
			}
			return err
		}
		if !req.Force && !transitionAllowed(t.Status, api.StatusStopped) {
			return api.ErrInvalidTaskStatus.New("Invalid status change", "current_status", t.Status, "new_status", api.StatusStopped)
		}
		var err error
		fields, err = s.setStatus(c, t, t.Status, true, req.StatusReason, "stopping")
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1, "fields": fields}, nil
}

func tasksDequeue(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	if req.NewStatus != nil && !slices.Contains(allStatuses, *req.NewStatus) {
		return nil, api.ErrValidation.New("invalid new_status", "new_status", *req.NewStatus)
	}
	resp := map[string]any{"dequeued": 1, "updated": 0, "fields": map[string]any{}}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		t, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
		if api.ErrInvalidTaskID.Is(err) {
			_, err := tx.RemoveTaskEntries(req.Task, "")
			return err
		}
		if err != nil {
			return err
		}
		if t.Status == api.StatusQueued {
			qid, _ := t.Execution["queue"].(string)
			if req.RemoveFromAllQueues || qid == "" {
				qid = ""
			}
			if qid == "" {
				_, err = tx.RemoveTaskEntries(t.ID, "")
			} else {
				_, err = tx.RemoveEntry(qid, t.ID)
			}
			if err != nil {
				return err
			}
		}
		if t.Status != api.StatusQueued && t.Status != api.StatusInProgress {
			return nil
		}
		target := t.EnqueueStatus
		if req.NewStatus != nil {
			target = *req.NewStatus
		} else if t.Execution != nil {
			delete(t.Execution, "queue")
		}
		if target == "" {
			target = api.StatusCreated
		}
		prev := t.Status
		fields, err := s.setStatus(c, t, target, true, req.StatusReason, req.StatusMessage)
		if err != nil {
			return err
		}
		if err := leaveQueues(tx, t, prev); err != nil {
			return err
		}
		if prev == api.StatusQueued && t.Status != prev {
			if err := s.settleLease(tx, t); err != nil {
				return fmt.Errorf("settling the task's hand-out: %w", err)
			}
		}
		t.EnqueueStatus = ""
		resp["updated"], resp["fields"] = 1, fields
		return tx.PutTask(t)
	})
	return resp, err
}

func tasksPing(s *Server, c *call) (any, error) {
	var req api.TaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return nil, s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		now := s.now()
		t.LastUpdate, t.LastChange = &now, &now
		if t.Status == api.StatusInProgress {
			s.refreshDuration(t, now)
		}
		return nil
	})
}
