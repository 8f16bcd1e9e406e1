package server

import (
	"errors"
	"slices"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// publishModel marks a model ready and, when asked, publishes the task that
// created it (reference ModelBLL.publish_model). It returns the task
// publication's result, or nil.
func (s *Server) publishModel(tx store.Tx, c *call, id string, publishTask, forceTask bool) (map[string]any, error) {
	m, err := s.getModel(tx, c, id)
	if err != nil {
		return nil, err
	}
	if m.Company == "" {
		return nil, api.ErrNoWritePermission.New("", "id", m.ID)
	}
	if m.Ready {
		return nil, api.ErrModelIsReady.New("", "model", id)
	}
	var published map[string]any
	if m.Task != "" && publishTask {
		t, err := s.getTask(tx, c, m.Task, api.ErrInvalidTaskID)
		switch {
		case api.ErrInvalidTaskID.Is(err):
		case err != nil:
			return nil, err
		case t.Status != api.StatusPublished:
			prev := t.Status
			fields, err := s.publishTask(c, t, forceTask, "", "")
			if err != nil {
				return nil, err
			}
			if err := leaveQueues(tx, t, prev); err != nil {
				return nil, err
			}
			if err := tx.PutTask(t); err != nil {
				return nil, err
			}
			published = map[string]any{"id": t.ID, "data": map[string]any{"updated": 1, "fields": fields}}
		}
	}
	now := s.now()
	m.Ready, m.LastUpdate = true, &now
	return published, tx.PutModel(m)
}

// publishTask moves a task through publishing to published. As the
// reference, it validates the move to published (from stopped, completed,
// failed, closed), then sets publishing itself, whatever the current status.
func (s *Server) publishTask(c *call, t *api.Task, force bool, reason, message string) (map[string]any, error) {
	if !force && !transitionAllowed(t.Status, api.StatusPublished) {
		return nil, api.ErrInvalidTaskStatus.New("Invalid status change", "current_status", t.Status, "new_status", api.StatusPublished)
	}
	if _, err := s.setStatus(c, t, api.StatusPublishing, true, reason, message); err != nil {
		return nil, err
	}
	fields, err := s.setStatus(c, t, api.StatusPublished, true, reason, message)
	if err != nil {
		return nil, err
	}
	now := s.now()
	t.Published = &now
	fields["published"] = now
	return fields, nil
}

// publishOutputModel marks a task's last output model ready (tasks.publish
// with publish_model, and tasks.completed with publish).
func (s *Server) publishOutputModel(tx store.Tx, c *call, t *api.Task) error {
	outputs := modelEntries(t, "output")
	if len(outputs) == 0 {
		return nil
	}
	id, _ := outputs[len(outputs)-1]["model"].(string)
	m, err := s.getModel(tx, c, id)
	if api.ErrInvalidModelID.Is(err) || (err == nil && m.Ready) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.now()
	m.Ready, m.LastUpdate = true, &now
	return tx.PutModel(m)
}

func modelsSetReady(s *Server, c *call) (any, error) {
	var req api.SetReadyRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	publishTask := req.PublishTask == nil || *req.PublishTask
	var published map[string]any
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		var err error
		published, err = s.publishModel(tx, c, req.Model, publishTask, req.ForcePublishTask)
		return err
	})
	if err != nil {
		return nil, err
	}
	// published_task only when the task was published (as the reference).
	resp := map[string]any{"updated": 1}
	if published != nil {
		resp["published_task"] = published
	}
	return resp, nil
}

// batchResult runs fn for each id in its own transaction and answers like
// the reference *_many endpoints.
func batchResult(ids []string, fn func(id string) (map[string]any, error)) (any, error) {
	if len(ids) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "ids")
	}
	succeeded, failed := []any{}, []any{}
	for _, id := range ids {
		out, err := fn(id)
		var ae *api.Error
		switch {
		case err == nil:
			out["id"] = id
			succeeded = append(succeeded, out)
		case errors.As(err, &ae):
			failed = append(failed, map[string]any{"id": id, "error": map[string]any{
				"codes": []int{ae.Code, ae.Subcode}, "msg": ae.Msg, "data": ae.Data}})
		default:
			return nil, err
		}
	}
	return map[string]any{"succeeded": succeeded, "failed": failed}, nil
}

func modelsPublishMany(s *Server, c *call) (any, error) {
	var req api.SetReadyRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	publishTasks := req.PublishTasks == nil || *req.PublishTasks
	return batchResult(req.IDs, func(id string) (map[string]any, error) {
		var published map[string]any
		err := s.store.Update(c.ctx, func(tx store.Tx) error {
			var err error
			published, err = s.publishModel(tx, c, id, publishTasks, req.ForcePublishTask)
			return err
		})
		out := map[string]any{"updated": true}
		if published != nil {
			out["published_task"] = published
		}
		return out, err
	})
}

// deleteModel removes a model and its events. A model another task uses as
// input, or whose creating task is published, needs force; those tasks then
// point at "__DELETED__<id>" (reference ModelBLL.delete_model).
func (s *Server) deleteModel(tx store.Tx, c *call, id string, force bool) (*api.Model, error) {
	m, err := s.getModel(tx, c, id)
	if err != nil {
		return nil, err
	}
	if m.Company == "" {
		return nil, api.ErrNoWritePermission.New("", "id", m.ID)
	}
	tasks, err := tx.Tasks(store.TaskQuery{Company: c.ident.Company})
	if err != nil {
		return nil, err
	}
	gone := "__DELETED__" + id
	var users []*api.Task
	for _, t := range tasks {
		if slices.ContainsFunc(modelEntries(t, "input"), func(e map[string]any) bool { return e["model"] == id }) {
			users = append(users, t)
		}
	}
	if len(users) > 0 && !force {
		return nil, api.ErrModelInUse.New("as execution model, use force=True to delete", "num_tasks", len(users))
	}
	rename := func(t *api.Task, kind string) {
		entries := modelEntries(t, kind)
		for _, e := range entries {
			if e["model"] == id {
				e["model"] = gone
			}
		}
		setModelEntries(t, kind, entries)
	}
	for _, t := range users {
		rename(t, "input")
		if err := tx.PutTask(t); err != nil {
			return nil, err
		}
	}
	if m.Task != "" && !strings.HasPrefix(m.Task, "__DELETED__") {
		t, err := s.getTask(tx, c, m.Task, api.ErrInvalidTaskID)
		if err != nil && !api.ErrInvalidTaskID.Is(err) {
			return nil, err
		}
		if t != nil && t.Status == api.StatusPublished {
			if !force {
				return nil, api.ErrModelCreatingTask.New("and published, use force=True to delete", "task", t.ID)
			}
			rename(t, "output")
			if t.Output == nil {
				t.Output = map[string]any{}
			}
			now := s.now()
			t.Output["error"] = "model deleted on " + now.Format("2006-01-02T15:04:05")
			t.LastChange = &now
			if err := tx.PutTask(t); err != nil {
				return nil, err
			}
		}
	}
	if _, err := tx.DeleteEvents(id); err != nil {
		return nil, err
	}
	return m, tx.DeleteModel(id)
}

func modelsDelete(s *Server, c *call) (any, error) {
	var req api.ModelDeleteRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var m *api.Model
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		var err error
		m, err = s.deleteModel(tx, c, req.Model, req.Force)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": true, "url": m.URI}, nil
}

func modelsDeleteMany(s *Server, c *call) (any, error) {
	var req struct {
		IDs   api.StringList `json:"ids"`
		Force bool           `json:"force"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	return batchResult(req.IDs, func(id string) (map[string]any, error) {
		var m *api.Model
		err := s.store.Update(c.ctx, func(tx store.Tx) error {
			var err error
			m, err = s.deleteModel(tx, c, id, req.Force)
			return err
		})
		if err != nil {
			return nil, err
		}
		return map[string]any{"deleted": true, "url": m.URI}, nil
	})
}
