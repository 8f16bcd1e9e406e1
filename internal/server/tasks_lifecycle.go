package server

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func tasksClone(s *Server, c *call) (any, error) {
	var req api.TaskCloneRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	resp := map[string]any{}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		src, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
		if err != nil {
			return err
		}
		var t api.Task
		b, _ := json.Marshal(src)
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		now := s.now()
		clone := &api.Task{ID: newID(), Name: t.Name, User: c.ident.User, Company: c.ident.Company, Type: t.Type,
			Status: api.StatusCreated, Comment: t.Comment, Project: t.Project, Parent: t.Parent,
			Created: &now, LastUpdate: &now, LastChange: &now, LastChangedBy: c.ident.User,
			Script: t.Script, Container: t.Container, Hyperparams: t.Hyperparams, Configuration: t.Configuration,
			Tags: t.Tags, SystemTags: removeString(removeString(t.SystemTags, "development"), "archived")}
		if clone.Parent == "" {
			clone.Parent = src.ID
		}
		if dest, ok := t.Output["destination"]; ok {
			clone.Output = map[string]any{"destination": dest}
		}
		if in, ok := t.Models["input"]; ok {
			clone.Models = map[string]any{"input": in, "output": []any{}}
		}
		if t.Execution != nil {
			clone.Execution = t.Execution
			delete(clone.Execution, "queue")
			if arts, ok := clone.Execution["artifacts"].([]any); ok {
				kept := []any{}
				for _, a := range arts {
					if m, ok := a.(map[string]any); ok && m["mode"] == "input" {
						kept = append(kept, a)
					}
				}
				clone.Execution["artifacts"] = kept
			}
			maps.Copy(clone.Execution, req.ExecutionOverrides)
		}
		edit := api.TaskCreateRequest{Name: req.NewTaskName, Comment: req.NewTaskComment, Tags: req.NewTaskTags,
			SystemTags: req.NewTaskSystemTags, Parent: req.NewTaskParent, Project: req.NewTaskProject,
			Hyperparams: req.NewTaskHyperparams, Configuration: req.NewTaskConfiguration}
		if req.NewTaskContainer != nil {
			cont := map[string]*string{}
			for k, v := range *req.NewTaskContainer {
				cont[k] = &v
			}
			edit.Container = &cont
		}
		if req.NewProjectName != nil && *req.NewProjectName != "" {
			p, created, err := s.ensureProject(tx, c, *req.NewProjectName)
			if err != nil {
				return err
			}
			edit.Project = &p.ID
			if created {
				resp["new_project"] = map[string]any{"id": p.ID, "name": p.Name}
			}
		}
		if _, err := s.applyTaskFields(tx, c, clone, &edit); err != nil {
			return err
		}
		resp["id"] = clone.ID
		return tx.PutTask(clone)
	})
	return resp, err
}

func tasksDelete(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	var deleted int
	var cleanup taskModelCleanup
	var urls map[string]any
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		t, err := s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
		if err != nil {
			return err
		}
		if !req.Force && t.Status != api.StatusCreated && !slices.Contains(t.SystemTags, "archived") {
			return api.ErrTaskCannotBeDeleted.New("due to status, use force=True", "task", t.ID, "expected", api.StatusCreated, "current", t.Status)
		}
		if req.ReturnFileURLs {
			if urls, err = s.taskFileURLs(tx, t); err != nil {
				return err
			}
		}
		deleteOutput := req.DeleteOutputModels == nil || *req.DeleteOutputModels
		if cleanup, err = s.cleanupTaskModels(tx, c, t, req.Force, deleteOutput, true); err != nil {
			return err
		}
		if _, err := tx.RemoveTaskEntries(t.ID, ""); err != nil {
			return err
		}
		if deleted, err = tx.DeleteEvents(t.ID); err != nil {
			return err
		}
		return tx.DeleteTask(t.ID)
	})
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"deleted": true, "updated_children": 0, "updated_models": cleanup.updated,
		"deleted_models": cleanup.deleted, "events": map[string]any{"deleted": deleted}}
	if urls != nil {
		urls["model_urls"] = orNone(cleanup.urls)
		resp["urls"] = urls
	}
	return resp, nil
}

// taskFileURLs lists the files a task's data points at, for return_file_urls:
// debug images and plot images (event_urls) and output artifacts.
func (s *Server) taskFileURLs(tx store.Tx, t *api.Task) (map[string]any, error) {
	events, err := tx.Events(store.EventQuery{TaskID: t.ID, Types: []string{"training_debug_image", "plot"}})
	if err != nil {
		return nil, err
	}
	var eventURLs, artifactURLs []string
	add := func(list *[]string, u string) {
		if u != "" && !slices.Contains(*list, u) {
			*list = append(*list, u)
		}
	}
	for _, e := range events {
		var doc struct {
			URL     string `json:"url"`
			PlotStr string `json:"plot_str"`
		}
		if json.Unmarshal(e.Doc, &doc) != nil {
			continue
		}
		add(&eventURLs, doc.URL)
		if doc.PlotStr != "" {
			var plot struct {
				Layout struct {
					Images []struct {
						Source string `json:"source"`
					} `json:"images"`
				} `json:"layout"`
			}
			if json.Unmarshal([]byte(doc.PlotStr), &plot) == nil {
				for _, im := range plot.Layout.Images {
					add(&eventURLs, im.Source)
				}
			}
		}
	}
	for _, a := range existingArtifacts(t) {
		if mode, _ := a["mode"].(string); mode == "" || mode == "output" {
			u, _ := a["uri"].(string)
			add(&artifactURLs, u)
		}
	}
	return map[string]any{"event_urls": orNone(eventURLs), "artifact_urls": orNone(artifactURLs)}, nil
}

func orNone(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func tasksArchive(s *Server, c *call) (any, error) {
	var req struct {
		Tasks api.StringList `json:"tasks"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Tasks) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "tasks")
	}
	archived := 0
	for _, id := range req.Tasks {
		err := s.withTask(c, id, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
			if t.Status == api.StatusQueued {
				if _, err := tx.RemoveTaskEntries(t.ID, ""); err != nil {
					return err
				}
				target := t.EnqueueStatus
				if target == "" {
					target = api.StatusCreated
				}
				if _, err := s.setStatus(c, t, target, true, "", ""); err != nil {
					return err
				}
			}
			if !slices.Contains(t.SystemTags, "archived") {
				t.SystemTags = sortedTags(append(t.SystemTags, "archived"))
				archived++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return map[string]any{"archived": archived}, nil
}

func tasksReset(s *Server, c *call) (any, error) {
	var req api.StatusChangeRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	resp := map[string]any{"deleted_models": 0}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if !req.Force && (t.Status == api.StatusPublished || t.Status == api.StatusPublishing) {
			return api.ErrInvalidTaskStatus.New("Invalid status change", "current_status", t.Status, "new_status", api.StatusCreated)
		}
		removed, err := tx.RemoveTaskEntries(t.ID, "")
		if err != nil {
			return err
		}
		if removed > 0 {
			resp["dequeued"] = map[string]any{"removed": removed}
		}
		if req.ReturnFileURLs {
			urls, err := s.taskFileURLs(tx, t)
			if err != nil {
				return err
			}
			resp["urls"] = urls
		}
		deleteOutput := req.DeleteOutputModels == nil || *req.DeleteOutputModels
		cleanup, err := s.cleanupTaskModels(tx, c, t, req.Force, deleteOutput, false)
		if err != nil {
			return err
		}
		resp["deleted_models"] = cleanup.deleted
		if urls, ok := resp["urls"].(map[string]any); ok {
			urls["model_urls"] = orNone(cleanup.urls)
		}
		if _, err := tx.DeleteEvents(t.ID); err != nil {
			return err
		}
		resetTask(t, req.ClearAll)
		fields, err := s.setStatus(c, t, api.StatusCreated, true, "reset", "reset")
		if err != nil {
			return err
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

// resetTask clears what a run left on a task (spec 2.6 tasks.reset).
func resetTask(t *api.Task, clearAll bool) {
	t.LastIteration, t.LastMetrics, t.Runtime = 0, nil, nil
	if t.Models != nil {
		t.Models["output"] = []any{}
	}
	if t.Output != nil {
		delete(t.Output, "result")
		delete(t.Output, "error")
	}
	t.LastWorker, t.LastWorkerReport = "", nil
	t.Started, t.Completed, t.Published, t.ActiveDuration = nil, nil, nil, nil
	t.EnqueueStatus = ""
	if clearAll {
		t.Execution, t.Script = map[string]any{}, nil
		return
	}
	if t.Execution != nil {
		delete(t.Execution, "queue")
		if arts, ok := t.Execution["artifacts"].([]any); ok {
			kept := []any{}
			for _, a := range arts {
				if m, ok := a.(map[string]any); ok && m["mode"] == "input" {
					kept = append(kept, a)
				}
			}
			t.Execution["artifacts"] = kept
		}
	}
}
