package server

import (
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// tasksWaitStatus is our extension tasks.wait_status ("task_wait" in
// server.info and the token): it answers a task's status and status
// message as soon as they differ from the ones the caller gives, or when
// wait_ms (at most maxWait) has passed. An agent watching its running
// task for an abort then sees a tasks.stop within milliseconds, with one
// held request instead of a poll every second. A change made through this
// server process wakes the call at once; one made through another replica
// is seen within repollInterval.
func tasksWaitStatus(s *Server, c *call) (any, error) {
	var req struct {
		Task          string  `json:"task"`
		Status        *string `json:"status"`
		StatusMessage string  `json:"status_message"`
		WaitMS        int64   `json:"wait_ms"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	if req.WaitMS < 0 {
		return nil, api.ErrValidation.New("wait_ms must not be negative")
	}
	wait := min(time.Duration(req.WaitMS)*time.Millisecond, maxWait)
	deadline := time.Now().Add(wait)
	for {
		woken := s.waker.watch(taskWakeKey(req.Task))
		var status, message string
		err := s.store.View(c.ctx, func(tx store.Tx) error {
			t, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
			if err != nil {
				return err
			}
			status, message = t.Status, t.StatusMessage
			return nil
		})
		if err != nil {
			return nil, err
		}
		changed := req.Status == nil || status != *req.Status || message != req.StatusMessage
		left := time.Until(deadline)
		if changed || left <= 0 {
			return map[string]any{"status": status, "status_message": message, "changed": changed}, nil
		}
		t := time.NewTimer(min(left, repollInterval))
		select {
		case <-woken:
		case <-t.C:
		case <-s.draining:
			t.Stop()
			return map[string]any{"status": status, "status_message": message, "changed": false}, nil
		case <-c.ctx.Done():
			t.Stop()
			return map[string]any{"status": status, "status_message": message, "changed": false}, nil
		}
		t.Stop()
	}
}

// taskWakeKey is the waker key of a task's status watchers.
func taskWakeKey(id string) string { return "task:" + id }
