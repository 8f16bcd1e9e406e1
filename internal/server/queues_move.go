package server

import (
	"errors"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// queueMove is queues.move_task_forward, _backward, _to_front and _to_back:
// the task moves within its queue and the answer is its new position
// (0 is the head). Pollers waiting on the queue look again, so that one
// that found the entries locked by the move does not wait for its timeout.
func queueMove(where string) handlerFunc {
	return func(s *Server, c *call) (any, error) {
		var req api.QueueMoveRequest
		if err := c.decode(&req); err != nil {
			return nil, err
		}
		if req.Task == "" {
			return nil, api.ErrMissingRequiredFields.New("", "field", "task")
		}
		count := 1
		if req.Count != nil {
			if *req.Count < 1 {
				return nil, api.ErrValidation.New("count must be at least 1")
			}
			count = *req.Count
		}
		pos := 0
		err := s.store.Update(c.ctx, func(tx store.Tx) error {
			q, err := s.getQueue(tx, c, req.Queue)
			if err != nil {
				return err
			}
			entries, err := tx.Entries(q.ID, 0)
			if err != nil {
				return err
			}
			from := -1
			for i, e := range entries {
				if e.Task == req.Task {
					from = i
				}
			}
			if from < 0 {
				return api.ErrTaskNotQueued.New("", "queue", q.ID, "task", req.Task)
			}
			to := 0
			switch where {
			case "forward":
				to = max(0, from-count)
			case "backward":
				to = min(len(entries)-1, from+min(count, len(entries)))
			case "back":
				to = len(entries) - 1
			}
			pos, err = tx.MoveEntry(q.ID, req.Task, to)
			if errors.Is(err, store.ErrNotFound) {
				return api.ErrTaskNotQueued.New("", "queue", q.ID, "task", req.Task)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		s.waker.wake(req.Queue)
		return map[string]any{"position": pos}, nil
	}
}
