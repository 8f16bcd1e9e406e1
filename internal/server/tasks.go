package server

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// taskView is the task as the requested API version shows it (spec 3.10).
func taskView(c *call, t *api.Task) map[string]any {
	doc := toDoc(t)
	for _, f := range api.HiddenTaskFields {
		delete(doc, f)
	}
	// The reference always returns its document defaults, and the SDK
	// relies on them (defaults.go).
	taskDefaults(doc)
	if c.below(2, 13) {
		// Old clients read the first input and last output model here.
		if in := modelEntries(t, "input"); len(in) > 0 {
			doc["execution"].(map[string]any)["model"] = in[0]["model"]
		}
		if out := modelEntries(t, "output"); len(out) > 0 {
			doc["output"].(map[string]any)["model"] = out[len(out)-1]["model"]
		}
		if img := t.Container["image"]; img != "" {
			exec, _ := doc["execution"].(map[string]any)
			if exec == nil {
				exec = map[string]any{}
				doc["execution"] = exec
			}
			exec["docker_cmd"] = strings.TrimSpace(img + " " + t.Container["arguments"])
		}
	}
	if c.below(2, 9) && len(t.Hyperparams) > 0 {
		params := map[string]any{}
		for section, items := range t.Hyperparams {
			for name, it := range items {
				if it.Type == "legacy" {
					params[name] = it.Value
				} else if section != "properties" {
					params[section+"/"+name] = it.Value
				}
			}
		}
		exec, _ := doc["execution"].(map[string]any)
		if exec == nil {
			exec = map[string]any{}
			doc["execution"] = exec
		}
		exec["parameters"] = params
	}
	return doc
}

func tasksGetByID(s *Server, c *call) (any, error) {
	var req api.TaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Task == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "task")
	}
	var t *api.Task
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		t, err = s.getTask(tx, c, req.Task, api.ErrInvalidTaskID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"task": taskView(c, t)}, nil
}

func tasksGetAll(s *Server, c *call) (any, error) {
	var req api.GetAllRequest
	var extra struct {
		IncludeSubprojects bool `json:"include_subprojects"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := c.decode(&extra); err != nil {
		return nil, err
	}
	body := maps.Clone(c.raw())
	if resp, ok, err := s.fastTaskList(c, &req, body); ok {
		return resp, err
	}
	q := store.TaskQuery{Company: c.ident.Company}
	if len(req.ID) > 0 {
		q.IDs = req.ID
	}
	q.Statuses = plainTerms(body["status"])
	var tasks []*api.Task
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		if err := expandSubprojects(tx, c, body, extra.IncludeSubprojects); err != nil {
			return err
		}
		q.Projects = plainTerms(body["project"])
		var err error
		tasks, err = tx.Tasks(q)
		return err
	})
	if err != nil {
		return nil, err
	}
	filter, err := compileFilter(body, taskFilters)
	if err != nil {
		return nil, err
	}
	docs := make([]map[string]any, 0, len(tasks))
	hideHidden := !req.SearchHidden && len(req.ID) == 0
	search := strings.ToLower(req.SearchText)
	for _, t := range tasks {
		if hideHidden && slices.Contains(t.SystemTags, "hidden") {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(t.ID+" "+t.Name+" "+t.Comment), search) {
			continue
		}
		doc := taskView(c, t)
		if filter.match(doc) {
			docs = append(docs, doc)
		}
	}
	order := []string(req.OrderBy)
	if len(order) == 0 {
		order = []string{"created"}
	}
	sortDocs(docs, order)
	return listResponse(c, "tasks", docs, &req)
}

// listResponse pages (or scrolls) and projects a listing.
func listResponse(c *call, key string, docs []map[string]any, req *api.GetAllRequest) (any, error) {
	resp := map[string]any{}
	if req.Size != nil || (req.ScrollID != nil && *req.ScrollID != "") {
		size := maxPageSize
		if req.Size != nil {
			if *req.Size < 1 {
				return nil, api.ErrValidation.New("size must be at least 1")
			}
			size = min(*req.Size, maxPageSize)
		}
		offset := 0
		if req.ScrollID != nil && *req.ScrollID != "" {
			if _, err := fmt.Sscanf(*req.ScrollID, "o%d", &offset); err != nil || offset < 0 {
				return nil, api.ErrValidation.New("invalid scroll_id", "scroll_id", *req.ScrollID)
			}
		}
		if offset > len(docs) {
			offset = len(docs)
		}
		end := min(offset+size, len(docs))
		docs = docs[offset:end]
		resp["scroll_id"] = fmt.Sprintf("o%d", end)
	} else {
		var err error
		docs, err = pageDocs(docs, req.Page, req.PageSize)
		if err != nil {
			return nil, err
		}
	}
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		out[i] = projectDoc(d, req.OnlyFields)
	}
	resp[key] = out
	return resp, nil
}

// plainTerms returns a list filter's values when they are plain strings
// (no exclusions or operators), so the store can index on them; nil means
// "filter in Go instead".
func plainTerms(v any) []string {
	var items []any
	switch x := v.(type) {
	case string:
		items = []any{x}
	case []any:
		items = x
	default:
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok || s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "__$") {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// validateTaskName applies the reference's minimum name length.
func validateTaskName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if len(name) < 3 {
		return "", api.ErrDataValidation.New("task name must be at least 3 characters", "name", name)
	}
	return name, nil
}

func tasksCreate(s *Server, c *call) (any, error) {
	var req api.TaskCreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Name == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "name")
	}
	if req.Type == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "type")
	}
	now := s.now()
	t := &api.Task{ID: newID(), User: c.ident.User, Company: c.ident.Company, Status: api.StatusCreated,
		Created: &now, LastUpdate: &now, LastChange: &now, LastChangedBy: c.ident.User, Tags: []string{}, SystemTags: []string{},
		Script: newTaskScript()}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		if _, err := s.applyTaskFields(tx, c, t, &req); err != nil {
			return err
		}
		return tx.PutTask(t)
	})
	if err != nil {
		return nil, err
	}
	return api.IDResponse{ID: t.ID}, nil
}

// userSettable are the task fields whose change does not bump last_update.
var userSettable = []string{"name", "comment", "tags", "system_tags", "project", "status_message"}

// applyTaskFields writes the create/edit fields of req into t and returns
// the fields written (spec 2.6 tasks.edit merge rules).
func (s *Server) applyTaskFields(tx store.Tx, c *call, t *api.Task, req *api.TaskCreateRequest) (map[string]any, error) {
	fields := map[string]any{}
	if req.Name != nil {
		name, err := validateTaskName(*req.Name)
		if err != nil {
			return nil, err
		}
		t.Name, fields["name"] = name, name
	}
	if req.Type != nil {
		if !slices.Contains(api.TaskTypes, *req.Type) {
			return nil, api.ErrValidation.New(fmt.Sprintf("invalid task type %q", *req.Type), "type", *req.Type)
		}
		t.Type, fields["type"] = *req.Type, *req.Type
	}
	if req.Tags != nil {
		t.Tags = sortedTags(*req.Tags)
		fields["tags"] = t.Tags
	}
	if req.SystemTags != nil {
		t.SystemTags = sortedTags(*req.SystemTags)
		fields["system_tags"] = t.SystemTags
	}
	if req.Comment != nil {
		t.Comment, fields["comment"] = *req.Comment, *req.Comment
	}
	if req.Parent != nil {
		if *req.Parent != "" && *req.Parent != t.ID {
			if _, err := s.getTask(tx, c, *req.Parent, api.ErrInvalidTaskID); err != nil {
				return nil, api.ErrInvalidTaskID.New("parent task not found", "parent", *req.Parent)
			}
		}
		t.Parent, fields["parent"] = *req.Parent, *req.Parent
	}
	if req.Project != nil {
		if *req.Project != "" {
			if _, err := s.getProject(tx, c, *req.Project); err != nil {
				return nil, err
			}
		}
		t.Project, fields["project"] = *req.Project, *req.Project
	}
	if req.OutputDest != nil {
		if t.Output == nil {
			t.Output = map[string]any{}
		}
		t.Output["destination"] = *req.OutputDest
		fields["output.destination"] = *req.OutputDest
	}
	if req.Execution != nil {
		exec := maps.Clone(req.Execution)
		if params, ok := exec["parameters"].(map[string]any); ok {
			if t.Hyperparams == nil {
				t.Hyperparams = map[string]map[string]api.ParamItem{}
			}
			args := map[string]api.ParamItem{}
			for k, v := range params {
				args[k] = api.ParamItem{Section: "Args", Name: k, Value: fmt.Sprint(v), Type: "legacy"}
			}
			t.Hyperparams["Args"] = args
		}
		delete(exec, "parameters")
		if cmd, ok := exec["docker_cmd"].(string); ok {
			if c.below(2, 13) {
				image, args, _ := strings.Cut(strings.TrimSpace(cmd), " ")
				t.Container = map[string]string{"image": image, "arguments": strings.TrimSpace(args)}
				fields["container"] = t.Container
			}
			delete(exec, "docker_cmd")
		}
		if t.Execution == nil {
			t.Execution = map[string]any{}
		}
		maps.Copy(t.Execution, exec)
		fields["execution"] = t.Execution
	}
	if req.Script != nil {
		if t.Script == nil {
			t.Script = map[string]any{}
		}
		for k, v := range req.Script {
			if s, ok := v.(string); ok && k != "diff" {
				v = strings.TrimSpace(s)
			}
			t.Script[k] = v
		}
		fields["script"] = t.Script
	}
	if req.Hyperparams != nil {
		t.Hyperparams = *req.Hyperparams
		for section, items := range t.Hyperparams {
			for name, it := range items {
				it.Section, it.Name = section, name
				items[name] = it
			}
		}
		fields["hyperparams"] = t.Hyperparams
	}
	if req.Configuration != nil {
		t.Configuration = *req.Configuration
		for name, it := range t.Configuration {
			it.Name = name
			t.Configuration[name] = it
		}
		fields["configuration"] = t.Configuration
	}
	if req.Models != nil {
		if t.Models == nil {
			t.Models = map[string]any{}
		}
		maps.Copy(t.Models, req.Models)
		fields["models"] = t.Models
	}
	if req.Container != nil {
		t.Container = map[string]string{}
		for k, v := range *req.Container {
			if v != nil {
				t.Container[k] = *v
			}
		}
		fields["container"] = t.Container
	}
	if req.Runtime != nil {
		t.Runtime = *req.Runtime
		fields["runtime"] = t.Runtime
	}
	now := s.now()
	t.LastChange, t.LastChangedBy = &now, c.ident.User
	for k := range fields {
		if !slices.Contains(userSettable, k) {
			t.LastUpdate = &now
			fields["last_update"] = now
			break
		}
	}
	fields["last_change"] = now
	return fields, nil
}

func sortedTags(tags []string) []string {
	out := slices.Clone(tags)
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func tasksEdit(s *Server, c *call) (any, error) {
	var req api.TaskCreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var fields map[string]any
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if !req.Force && t.Status != api.StatusCreated {
			return api.ErrInvalidTaskStatus.New("Invalid status for edit, use force=True", "status", t.Status, "expected", api.StatusCreated)
		}
		var err error
		fields, err = s.applyTaskFields(tx, c, t, &req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateResponse{Updated: 1, Fields: fields}, nil
}

func tasksUpdate(s *Server, c *call) (any, error) {
	var req api.TaskUpdateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	fields := map[string]any{}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		edit := api.TaskCreateRequest{Name: req.Name, Tags: req.Tags, SystemTags: req.SystemTags, Comment: req.Comment, Project: req.Project}
		var err error
		if fields, err = s.applyTaskFields(tx, c, t, &edit); err != nil {
			return err
		}
		if req.StatusMessage != nil {
			t.StatusMessage, fields["status_message"] = *req.StatusMessage, *req.StatusMessage
		}
		if req.OutputError != nil {
			if t.Output == nil {
				t.Output = map[string]any{}
			}
			t.Output["error"], fields["output.error"] = *req.OutputError, *req.OutputError
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	updated := 0
	if len(fields) > 1 { // more than last_change
		updated = 1
	}
	return api.UpdateResponse{Updated: updated, Fields: fields}, nil
}

func tasksSetRequirements(s *Server, c *call) (any, error) {
	var req api.SetRequirementsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Requirements == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "requirements")
	}
	err := s.withTask(c, req.Task, api.ErrInvalidTaskID, func(tx store.Tx, t *api.Task) error {
		if t.Script == nil {
			return api.ErrMissingTaskFields.New("Task has no script field", "task", t.ID)
		}
		t.Script["requirements"] = req.Requirements
		now := s.now()
		t.LastUpdate, t.LastChange, t.LastChangedBy = &now, &now, c.ident.User
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateResponse{Updated: 1, Fields: map[string]any{"script.requirements": req.Requirements}}, nil
}
