package server

import (
	"slices"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// The links between tasks and models: a task lists the models it uses
// (models.input) and produced (models.output), each entry {name, model,
// updated}; a model names the task that created it (task).

// modelEntries returns a task's model list of one kind as objects.
func modelEntries(t *api.Task, kind string) []map[string]any {
	list, _ := t.Models[kind].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func setModelEntries(t *api.Task, kind string, entries []map[string]any) {
	if t.Models == nil {
		t.Models = map[string]any{}
	}
	list := make([]any, len(entries))
	for i, e := range entries {
		list[i] = e
	}
	t.Models[kind] = list
}

// putModelEntry adds or replaces (by name) one model entry of a task.
func (s *Server) putModelEntry(t *api.Task, kind, name, modelID string) {
	entries := modelEntries(t, kind)
	entry := map[string]any{"name": name, "model": modelID, "updated": s.now()}
	if i := slices.IndexFunc(entries, func(e map[string]any) bool { return e["name"] == name }); i >= 0 {
		entries[i] = entry
	} else {
		entries = append(entries, entry)
	}
	setModelEntries(t, kind, entries)
}

func tasksAddOrUpdateModel(s *Server, c *call) (any, error) {
	var req api.TaskModelRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"task", req.Task}, {"name", req.Name}, {"model", req.Model}, {"type", req.Type}} {
		if f.v == "" {
			return nil, api.ErrMissingRequiredFields.New("", "field", f.name)
		}
	}
	if req.Type != "input" && req.Type != "output" {
		return nil, api.ErrValidation.New("type must be input or output", "type", req.Type)
	}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if _, err := s.getModel(tx, c, req.Model); err != nil {
			return err
		}
		s.putModelEntry(t, req.Type, req.Name, req.Model)
		if req.Iteration != nil && *req.Iteration > t.LastIteration {
			t.LastIteration = *req.Iteration
		}
		now := s.now()
		t.LastUpdate, t.LastChange, t.LastChangedBy = &now, &now, c.ident.User
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1}, nil
}

func tasksDeleteModels(s *Server, c *call) (any, error) {
	var req api.DeleteTaskModelsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Models) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "models")
	}
	for _, m := range req.Models {
		if m.Name == "" || (m.Type != "input" && m.Type != "output") {
			return nil, api.ErrValidation.New("each model needs a name and a type (input or output)")
		}
	}
	updated := 0
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		for _, kind := range []string{"input", "output"} {
			entries := modelEntries(t, kind)
			kept := slices.DeleteFunc(entries, func(e map[string]any) bool {
				return slices.ContainsFunc(req.Models, func(r api.TaskModelRef) bool { return r.Type == kind && r.Name == e["name"] })
			})
			if len(kept) != len(modelEntries(t, kind)) {
				updated = 1
			}
			setModelEntries(t, kind, kept)
		}
		now := s.now()
		t.LastUpdate, t.LastChange, t.LastChangedBy = &now, &now, c.ident.User
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": updated}, nil
}

// modelsUpdateForTask records a task's output model: it updates the task's
// last output model, or creates one from the task (reference
// models.update_for_task, which the SDK still sends for its upload flow).
func modelsUpdateForTask(s *Server, c *call) (any, error) {
	var req api.ModelRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == nil || *req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	hasURI := req.URI != nil && *req.URI != ""
	if hasURI == (req.OverrideModelID != "") {
		return nil, api.ErrMissingRequiredFields.New("exactly one field is required", "fields", []string{"uri", "override_model_id"})
	}
	// As the reference: {id, created} when a model was made, {id, updated,
	// fields} when the task's model was updated.
	resp := map[string]any{}
	err := s.withTask(c, *req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if t.Status != api.StatusCreated && t.Status != api.StatusInProgress {
			return api.ErrInvalidTaskStatus.New("model can only be updated for tasks in the created or in_progress states", "id", t.ID, "status", t.Status)
		}
		var m *api.Model
		var err error
		switch outputs := modelEntries(t, "output"); {
		case req.OverrideModelID != "":
			if m, err = s.getModel(tx, c, req.OverrideModelID); err != nil {
				return err
			}
			resp["updated"], resp["fields"] = 0, map[string]any{}
		case len(outputs) > 0:
			// The task has an output model: update it.
			id, _ := outputs[len(outputs)-1]["model"].(string)
			m, err = s.getModel(tx, c, id)
			if err != nil {
				return err
			}
			edit := req
			edit.Task, edit.Project, edit.Parent = nil, nil, nil
			fields, err := s.applyModelFields(tx, c, m, &edit, nil)
			if err != nil {
				return err
			}
			if err := tx.PutModel(m); err != nil {
				return err
			}
			resp["id"], resp["updated"], resp["fields"] = m.ID, 1, fields
			return nil
		default:
			now := s.now()
			m = &api.Model{ID: newID(), User: c.ident.User, Company: c.ident.Company, Created: &now, Task: t.ID,
				Project: t.Project, Tags: []string{}, SystemTags: []string{}, Ready: t.Status == api.StatusPublished}
			if fw, ok := t.Execution["framework"].(string); ok {
				m.Framework = fw
			}
			if inputs := modelEntries(t, "input"); len(inputs) > 0 {
				m.Parent, _ = inputs[0]["model"].(string)
			}
			name, comment := t.Name, "Created by task `"+t.Name+"` ("+t.ID+")"
			edit := req
			edit.Task, edit.Project, edit.Parent = nil, nil, nil
			if edit.Name == nil {
				edit.Name = &name
			}
			if edit.Comment == nil {
				edit.Comment = &comment
			}
			if _, err := s.applyModelFields(tx, c, m, &edit, nil); err != nil {
				return err
			}
			if err := tx.PutModel(m); err != nil {
				return err
			}
			resp["created"] = true
		}
		resp["id"] = m.ID
		s.putModelEntry(t, "output", "Output Model", m.ID)
		if req.Iteration != nil && *req.Iteration > t.LastIteration {
			t.LastIteration = *req.Iteration
		}
		now := s.now()
		t.LastUpdate, t.LastChange, t.LastChangedBy = &now, &now, c.ident.User
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// taskModelCleanup is what deleting or resetting a task does to the models
// it created (reference cleanup_task): draft models go (unless another task
// uses them as input, then they only lose their task); published ones stay,
// detached, and need force.
type taskModelCleanup struct {
	deleted, updated int
	urls             []string // the deleted models' files
}

func (s *Server) cleanupTaskModels(tx store.Tx, c *call, t *api.Task, force, deleteOutput, deleting bool) (taskModelCleanup, error) {
	var res taskModelCleanup
	models, err := tx.Models(store.ModelQuery{Company: t.Company, Tasks: []string{t.ID}})
	if err != nil || len(models) == 0 {
		return res, err
	}
	var published, drafts []*api.Model
	for _, m := range models {
		if m.Ready {
			published = append(published, m)
		} else {
			drafts = append(drafts, m)
		}
	}
	if !force && len(published) > 0 {
		return res, api.ErrTaskCannotBeDeleted.New("has output models, use force=True", "task", t.ID, "models", len(published))
	}
	inUse := map[string]bool{}
	if len(drafts) > 0 {
		others, err := tx.Tasks(store.TaskQuery{Company: t.Company})
		if err != nil {
			return res, err
		}
		for _, o := range others {
			if o.ID == t.ID {
				continue
			}
			for _, e := range modelEntries(o, "input") {
				if id, _ := e["model"].(string); id != "" {
					inUse[id] = true
				}
			}
		}
	}
	detach := func(m *api.Model, to string) error {
		m.Task = to
		return tx.PutModel(m)
	}
	for _, m := range drafts {
		switch {
		case deleteOutput && !inUse[m.ID]:
			if err := tx.DeleteModel(m.ID); err != nil {
				return res, err
			}
			if _, err := tx.DeleteEvents(m.ID); err != nil {
				return res, err
			}
			res.deleted++
			if m.URI != "" {
				res.urls = append(res.urls, m.URI)
			}
		case deleteOutput:
			if err := detach(m, ""); err != nil {
				return res, err
			}
		case deleting:
			if err := detach(m, "__DELETED__"+t.ID); err != nil {
				return res, err
			}
			res.updated++
		}
	}
	for _, m := range published {
		to := ""
		if deleting {
			to = "__DELETED__" + t.ID
		}
		if err := detach(m, to); err != nil {
			return res, err
		}
		res.updated++
	}
	return res, nil
}
