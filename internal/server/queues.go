package server

import (
	"errors"
	"slices"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func (s *Server) getQueue(tx store.Tx, c *call, id string) (*api.Queue, error) {
	if id == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "queue")
	}
	q, err := tx.Queue(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && q.Company != c.ident.Company) {
		return nil, api.ErrInvalidQueueID.New("", "id", id)
	}
	return q, err
}

// queueView adds the entries and applies the version rules (metadata is a
// list up to 2.16).
// A maxEntries below zero leaves the entries out unread (a projection
// without them: a daemon reading its queues' tags on every pass must not
// read 100,000 queued entries each time).
func queueView(tx store.Tx, c *call, q *api.Queue, maxEntries int) (map[string]any, error) {
	if maxEntries >= 0 {
		entries, err := tx.Entries(q.ID, maxEntries)
		if err != nil {
			return nil, err
		}
		q.Entries = entries
	}
	doc := toDoc(q)
	if c.below(2, 17) {
		doc["metadata"] = []any{}
	} else if _, ok := doc["metadata"]; !ok {
		doc["metadata"] = map[string]any{}
	}
	return doc, nil
}

// checkQueue verifies that a queue of the caller's company exists.
func (s *Server) checkQueue(tx store.Tx, c *call, id string) error {
	if id == "" {
		return api.ErrMissingRequiredFields.New("", "field", "queue")
	}
	company, err := tx.QueueCompany(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && company != c.ident.Company) {
		return api.ErrInvalidQueueID.New("", "id", id)
	}
	return err
}

func (s *Server) defaultQueue(tx store.Tx, c *call) (*api.Queue, error) {
	queues, err := tx.Queues(c.ident.Company)
	if err != nil {
		return nil, err
	}
	var found []*api.Queue
	for _, q := range queues {
		if slices.Contains(q.SystemTags, "default") {
			found = append(found, q)
		}
	}
	switch len(found) {
	case 0:
		return nil, api.ErrNoDefaultQueue.New("")
	case 1:
		return found[0], nil
	default:
		return nil, api.ErrMultipleDefaultQueues.New("")
	}
}

func (s *Server) newQueue(c *call, req api.QueueCreateRequest) (*api.Queue, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "name")
	}
	if len(name) < 3 {
		return nil, api.ErrDataValidation.New("queue name must be at least 3 characters", "name", name)
	}
	now := s.now()
	return &api.Queue{ID: newID(), Name: name, DisplayName: req.DisplayName, Company: c.ident.Company, User: c.ident.User,
		Created: &now, LastUpdate: &now, Tags: sortedTags(req.Tags), SystemTags: sortedTags(req.SystemTags), Metadata: req.Metadata}, nil
}

func queuesCreate(s *Server, c *call) (any, error) {
	var req api.QueueCreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	q, err := s.newQueue(c, req)
	if err != nil {
		return nil, err
	}
	err = s.store.Update(c.ctx, func(tx store.Tx) error {
		ok, err := tx.InsertQueue(q)
		if err == nil && !ok {
			return api.ErrExpectedUniqueData.New("", "name", q.Name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.IDResponse{ID: q.ID}, nil
}

func queuesGetAll(s *Server, c *call) (any, error) {
	var req api.GetAllRequest
	var extra api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := c.decode(&extra); err != nil {
		return nil, err
	}
	filter, err := compileFilter(c.raw(), queueFilters)
	if err != nil {
		return nil, err
	}
	showHidden := req.SearchHidden || len(req.ID) > 0 || (req.Name != nil && *req.Name != "")
	maxEntries := 0
	if extra.MaxTaskEntries != nil {
		maxEntries = max(0, *extra.MaxTaskEntries)
	}
	if len(req.OnlyFields) > 0 && !slices.ContainsFunc(req.OnlyFields, func(f string) bool {
		return f == "entries" || strings.HasPrefix(f, "entries.")
	}) && !slices.ContainsFunc(req.OrderBy, func(f string) bool { return strings.Contains(f, "entries") }) {
		maxEntries = -1
	}
	var docs []map[string]any
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		queues, err := tx.Queues(c.ident.Company)
		if err != nil {
			return err
		}
		wanted := idSet(req.ID)
		for _, q := range queues {
			if wanted != nil && !wanted[q.ID] {
				continue
			}
			if !showHidden && slices.ContainsFunc(q.Tags, func(t string) bool { return slices.Contains(s.opts.HiddenQueueTags, t) }) {
				continue
			}
			doc, err := queueView(tx, c, q, maxEntries)
			if err != nil {
				return err
			}
			if filter.match(doc) {
				docs = append(docs, doc)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortDocs(docs, req.OrderBy)
	return listResponse(c, "queues", docs, &req)
}

func queuesGetByID(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	maxEntries := 0
	if req.MaxTaskEntries != nil {
		maxEntries = max(0, *req.MaxTaskEntries)
	}
	var doc map[string]any
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		doc, err = queueView(tx, c, q, maxEntries)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"queue": doc}, nil
}

func queuesGetDefault(s *Server, c *call) (any, error) {
	var q *api.Queue
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		q, err = s.defaultQueue(tx, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": q.ID, "name": q.Name}, nil
}

func queuesUpdate(s *Server, c *call) (any, error) {
	var req api.QueueUpdateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	fields := map[string]any{}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		if req.Name != nil {
			name := strings.TrimSpace(*req.Name)
			if len(name) < 3 {
				return api.ErrDataValidation.New("queue name must be at least 3 characters", "name", name)
			}
			others, err := tx.Queues(c.ident.Company)
			if err != nil {
				return err
			}
			for _, o := range others {
				if o.Name == name && o.ID != q.ID {
					return api.ErrExpectedUniqueData.New("", "name", name)
				}
			}
			q.Name, fields["name"] = name, name
		}
		if req.DisplayName != nil {
			q.DisplayName, fields["display_name"] = *req.DisplayName, *req.DisplayName
		}
		if req.Tags != nil {
			q.Tags = sortedTags(*req.Tags)
			fields["tags"] = q.Tags
		}
		if req.SystemTags != nil {
			q.SystemTags = sortedTags(*req.SystemTags)
			fields["system_tags"] = q.SystemTags
		}
		if req.Metadata != nil {
			q.Metadata, fields["metadata"] = req.Metadata, req.Metadata
		}
		now := s.now()
		q.LastUpdate = &now
		return tx.PutQueue(q)
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateResponse{Updated: 1, Fields: fields}, nil
}

func queuesDelete(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		entries, err := tx.Entries(q.ID, 0)
		if err != nil {
			return err
		}
		if len(entries) > 0 && !req.Force {
			return api.ErrQueueNotEmpty.New("", "queue", q.ID, "num_entries", len(entries))
		}
		for _, e := range entries {
			if err := s.unqueueTask(tx, c, e.Task); err != nil {
				return err
			}
		}
		return tx.DeleteQueue(q.ID)
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": 1}, nil
}

// unqueueTask puts a queued task back in its pre-enqueue status.
func (s *Server) unqueueTask(tx store.Tx, c *call, taskID string) error {
	t, err := tx.Task(taskID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || t.Status != api.StatusQueued {
		return err
	}
	target := t.EnqueueStatus
	if target == "" {
		target = api.StatusCreated
	}
	if _, err := s.setStatus(c, t, target, true, "", ""); err != nil {
		return err
	}
	if err := leaveQueues(tx, t, api.StatusQueued); err != nil {
		return err
	}
	t.EnqueueStatus = ""
	delete(t.Execution, "queue")
	return tx.PutTask(t)
}

func queuesAddTask(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		t, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
		if err != nil {
			return err
		}
		added, err := tx.AddEntry(q.ID, t.ID, s.now())
		if err != nil {
			return err
		}
		if !added {
			return api.ErrTaskAlreadyQueued.New("", "task", t.ID, "queue", q.ID)
		}
		changed := false
		if t.Status != api.StatusQueued {
			// A task waits in a queue only while queued (see leaveQueues):
			// the upstream server adds a created or stopped task and leaves
			// its status alone, so that a later stop or reset could leave
			// it in the queue. Here it becomes queued, as tasks.enqueue
			// would make it, in the same transaction.
			if !transitionAllowed(t.Status, api.StatusQueued) {
				return api.ErrInvalidTaskStatus.New("only a queued task, or one that may be enqueued, can be added to a queue",
					"current_status", t.Status, "new_status", api.StatusQueued)
			}
			prev := t.Status
			if _, err := s.setStatus(c, t, api.StatusQueued, false, "", ""); err != nil {
				return err
			}
			t.EnqueueStatus = prev
			changed = true
		}
		if req.UpdateExecutionQueue == nil || *req.UpdateExecutionQueue {
			if t.Execution == nil {
				t.Execution = map[string]any{}
			}
			t.Execution["queue"] = q.ID
			changed = true
		}
		if changed {
			return tx.PutTask(t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.waker.wake(req.Queue)
	return map[string]any{"added": 1}, nil
}

func queuesRemoveTask(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	removed := 0
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		if removed, err = tx.RemoveEntry(q.ID, req.Task); err != nil {
			return err
		}
		if removed == 0 {
			return api.ErrTaskNotQueued.New("", "queue", q.ID, "task", req.Task)
		}
		if req.UpdateTaskStatus {
			return s.unqueueTask(tx, c, req.Task)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"removed": removed}, nil
}

func queuesPeekTask(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var head any
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		entries, err := tx.Entries(q.ID, 1)
		if len(entries) > 0 {
			head = entries[0].Task
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"task": head}, nil
}

func queuesGetNumEntries(s *Server, c *call) (any, error) {
	var req api.QueueTaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	n := 0
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		q, err := s.getQueue(tx, c, req.Queue)
		if err != nil {
			return err
		}
		n, err = tx.CountEntries(q.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"num": n}, nil
}
