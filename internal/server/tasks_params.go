package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// checkParamEdit applies the status rule of hyper-parameter and
// configuration edits: created, or with force also queued or in_progress.
func checkParamEdit(t *api.Task, force bool) error {
	if t.Status == api.StatusCreated || (force && (t.Status == api.StatusQueued || t.Status == api.StatusInProgress)) {
		return nil
	}
	return api.ErrInvalidTaskStatus.New("Task is not in an editable state", "status", t.Status)
}

// readTasks loads several tasks for the read endpoints, failing with
// invalid_task_id when one is unknown.
func (s *Server) readTasks(c *call, ids []string) ([]*api.Task, error) {
	if len(ids) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "tasks")
	}
	var out []*api.Task
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		for _, id := range ids {
			t, err := s.getTask(tx, c, id, api.ErrInvalidTaskID)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

func tasksGetHyperParams(s *Server, c *call) (any, error) {
	var req api.TasksRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	tasks, err := s.readTasks(c, req.Tasks)
	if err != nil {
		return nil, err
	}
	params := []map[string]any{}
	for _, t := range tasks {
		items := []api.ParamItem{}
		for _, sec := range t.Hyperparams {
			for _, it := range sec {
				items = append(items, it)
			}
		}
		sort.Slice(items, func(i, j int) bool {
			if items[i].Section != items[j].Section {
				return items[i].Section < items[j].Section
			}
			return items[i].Name < items[j].Name
		})
		params = append(params, map[string]any{"task": t.ID, "hyperparams": items})
	}
	return map[string]any{"params": params}, nil
}

func tasksEditHyperParams(s *Server, c *call) (any, error) {
	var req api.EditHyperParamsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Hyperparams) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "hyperparams")
	}
	for _, it := range req.Hyperparams {
		if it.Section == "" || it.Name == "" {
			return nil, api.ErrValidation.New("hyper-parameters need a section and a name")
		}
	}
	if req.ReplaceHyperparams != "" && !slices.Contains([]string{"none", "section", "all"}, req.ReplaceHyperparams) {
		return nil, api.ErrValidation.New("replace_hyperparams must be none, section or all")
	}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if !onlyProperties(req.Hyperparams) {
			if err := checkParamEdit(t, req.Force); err != nil {
				return err
			}
		}
		if t.Hyperparams == nil || req.ReplaceHyperparams == "all" {
			t.Hyperparams = map[string]map[string]api.ParamItem{}
		}
		if req.ReplaceHyperparams == "section" {
			for _, it := range req.Hyperparams {
				delete(t.Hyperparams, it.Section)
			}
		}
		for _, it := range req.Hyperparams {
			if strings.EqualFold(it.Section, "properties") {
				it.Section = "properties"
			}
			if t.Hyperparams[it.Section] == nil {
				t.Hyperparams[it.Section] = map[string]api.ParamItem{}
			}
			t.Hyperparams[it.Section][it.Name] = it
		}
		s.touch(c, t, !onlyProperties(req.Hyperparams))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1}, nil
}

func onlyProperties(items []api.ParamItem) bool {
	for _, it := range items {
		if !strings.EqualFold(it.Section, "properties") {
			return false
		}
	}
	return true
}

// touch records a change by the caller.
func (s *Server) touch(c *call, t *api.Task, update bool) {
	now := s.now()
	t.LastChange, t.LastChangedBy = &now, c.ident.User
	if update {
		t.LastUpdate = &now
	}
}

func tasksDeleteHyperParams(s *Server, c *call) (any, error) {
	var req api.EditHyperParamsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Hyperparams) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "hyperparams")
	}
	deleted := 0
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if !onlyProperties(req.Hyperparams) {
			if err := checkParamEdit(t, req.Force); err != nil {
				return err
			}
		}
		for _, it := range req.Hyperparams {
			sec := it.Section
			if strings.EqualFold(sec, "properties") {
				sec = "properties"
			}
			if it.Name == "" {
				if _, ok := t.Hyperparams[sec]; ok {
					deleted += len(t.Hyperparams[sec])
					delete(t.Hyperparams, sec)
				}
				continue
			}
			if _, ok := t.Hyperparams[sec][it.Name]; ok {
				delete(t.Hyperparams[sec], it.Name)
				deleted++
			}
		}
		s.touch(c, t, !onlyProperties(req.Hyperparams))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": deleted}, nil
}

func tasksGetConfigurations(s *Server, c *call) (any, error) {
	var req api.TasksRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	tasks, err := s.readTasks(c, req.Tasks)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, t := range tasks {
		items := []api.ConfigItem{}
		for name, it := range t.Configuration {
			if len(req.Names) == 0 || slices.Contains(req.Names, name) {
				items = append(items, it)
			}
		}
		sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		out = append(out, map[string]any{"task": t.ID, "configuration": items})
	}
	return map[string]any{"configurations": out}, nil
}

func tasksGetConfigurationNames(s *Server, c *call) (any, error) {
	var req api.TasksRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	tasks, err := s.readTasks(c, req.Tasks)
	if err != nil {
		return nil, err
	}
	skipEmpty := req.SkipEmpty == nil || *req.SkipEmpty
	out := []map[string]any{}
	for _, t := range tasks {
		names := []string{}
		for name, it := range t.Configuration {
			if !skipEmpty || it.Value != "" {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		out = append(out, map[string]any{"task": t.ID, "names": names})
	}
	return map[string]any{"configurations": out}, nil
}

func tasksEditConfiguration(s *Server, c *call) (any, error) {
	var req api.EditConfigurationRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Configuration) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "configuration")
	}
	for _, it := range req.Configuration {
		if it.Name == "" {
			return nil, api.ErrValidation.New("configuration items need a name")
		}
	}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if err := checkParamEdit(t, req.Force); err != nil {
			return err
		}
		if t.Configuration == nil || req.ReplaceConfiguration {
			t.Configuration = map[string]api.ConfigItem{}
		}
		for _, it := range req.Configuration {
			t.Configuration[it.Name] = it
		}
		s.touch(c, t, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1}, nil
}

func tasksDeleteConfiguration(s *Server, c *call) (any, error) {
	var req api.DeleteConfigurationRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	deleted := 0
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if err := checkParamEdit(t, req.Force); err != nil {
			return err
		}
		for _, name := range req.Configuration {
			if _, ok := t.Configuration[name]; ok {
				delete(t.Configuration, name)
				deleted++
			}
		}
		s.touch(c, t, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": deleted}, nil
}

// artifactKey identifies an artifact by key and mode.
func artifactKey(a map[string]any) string {
	mode, _ := a["mode"].(string)
	if mode == "" {
		mode = "output"
	}
	return fmt.Sprintf("%v\x00%s", a["key"], mode)
}

func checkArtifactEdit(t *api.Task) error {
	switch t.Status {
	case api.StatusCreated, api.StatusQueued, api.StatusInProgress:
		return nil
	}
	return api.ErrInvalidTaskStatus.New("Task is not in an editable state", "status", t.Status)
}

func tasksAddOrUpdateArtifacts(s *Server, c *call) (any, error) {
	var req api.ArtifactsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Artifacts) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "artifacts")
	}
	for _, a := range req.Artifacts {
		if k, _ := a["key"].(string); k == "" {
			return nil, api.ErrMissingRequiredFields.New("artifact key is required", "field", "key")
		}
		if ty, _ := a["type"].(string); ty == "" {
			return nil, api.ErrMissingRequiredFields.New("artifact type is required", "field", "type")
		}
	}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if err := checkArtifactEdit(t); err != nil {
			return err
		}
		byKey := map[string]any{}
		for _, a := range existingArtifacts(t) {
			byKey[artifactKey(a)] = a
		}
		for _, a := range req.Artifacts {
			if _, ok := a["mode"]; !ok {
				a["mode"] = "output"
			}
			byKey[artifactKey(a)] = a
		}
		storeArtifacts(t, byKey)
		s.touch(c, t, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": len(req.Artifacts)}, nil
}

func tasksDeleteArtifacts(s *Server, c *call) (any, error) {
	var req api.ArtifactsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	deleted := 0
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if err := checkArtifactEdit(t); err != nil {
			return err
		}
		byKey := map[string]any{}
		for _, a := range existingArtifacts(t) {
			byKey[artifactKey(a)] = a
		}
		for _, a := range req.Artifacts {
			if _, ok := byKey[artifactKey(a)]; ok {
				delete(byKey, artifactKey(a))
				deleted++
			}
		}
		storeArtifacts(t, byKey)
		s.touch(c, t, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"deleted": deleted}, nil
}

func existingArtifacts(t *api.Task) []map[string]any {
	var out []map[string]any
	if list, ok := t.Execution["artifacts"].([]any); ok {
		for _, a := range list {
			if m, ok := a.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func storeArtifacts(t *api.Task, byKey map[string]any) {
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := make([]any, 0, len(keys))
	for _, k := range keys {
		list = append(list, byKey[k])
	}
	if t.Execution == nil {
		t.Execution = map[string]any{}
	}
	t.Execution["artifacts"] = list
}
