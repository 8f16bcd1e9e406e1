package server

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// Models are stored like tasks: a JSON document per model next to the
// columns the listings filter on (company, project, task).

var modelFilters = filterSpec{
	lists:    []string{"user", "project", "task", "parent", "framework", "tags", "system_tags"},
	regexs:   []string{"name", "comment", "uri"},
	dates:    []string{"created", "last_update"},
	prefixes: []string{"metadata."},
	equals:   []string{"ready"},
}

func (s *Server) getModel(tx store.Tx, c *call, id string) (*api.Model, error) {
	if id == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "model")
	}
	m, err := tx.Model(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.Company != c.ident.Company && m.Company != "") {
		return nil, api.ErrInvalidModelID.New("", "id", id)
	}
	return m, err
}

// withModel runs fn on a locked model of the caller's company and stores it.
func (s *Server) withModel(c *call, id string, fn func(tx store.Tx, m *api.Model) error) error {
	return s.store.Update(c.ctx, func(tx store.Tx) error {
		m, err := s.getModel(tx, c, id)
		if err != nil {
			return err
		}
		if m.Company == "" {
			return api.ErrNoWritePermission.New("", "id", m.ID)
		}
		if err := fn(tx, m); err != nil {
			return err
		}
		return tx.PutModel(m)
	})
}

func metadataMap(items []api.MetadataItem) (map[string]any, error) {
	out := map[string]any{}
	for _, it := range items {
		if it.Key == "" {
			return nil, api.ErrValidation.New("metadata items need a key")
		}
		out[it.Key] = map[string]any{"key": it.Key, "type": it.Type, "value": it.Value}
	}
	return out, nil
}

// applyModelFields writes the create/edit fields of req into m and returns
// the fields written. allowed, when not nil, limits the fields (models.update).
func (s *Server) applyModelFields(tx store.Tx, c *call, m *api.Model, req *api.ModelRequest, allowed []string) (map[string]any, error) {
	fields := map[string]any{}
	ok := func(name string) bool { return allowed == nil || slices.Contains(allowed, name) }
	if req.Name != nil && ok("name") {
		name := strings.TrimSpace(*req.Name)
		if name == "" {
			return nil, api.ErrDataValidation.New("model name cannot be empty", "name", *req.Name)
		}
		m.Name, fields["name"] = name, name
	}
	if req.URI != nil && ok("uri") {
		m.URI, fields["uri"] = *req.URI, *req.URI
	}
	if req.Comment != nil && ok("comment") {
		m.Comment, fields["comment"] = *req.Comment, *req.Comment
	}
	if req.Tags != nil && ok("tags") {
		m.Tags = sortedTags(*req.Tags)
		fields["tags"] = m.Tags
	}
	if req.SystemTags != nil && ok("system_tags") {
		m.SystemTags = sortedTags(*req.SystemTags)
		fields["system_tags"] = m.SystemTags
	}
	if req.Framework != nil && ok("framework") {
		m.Framework, fields["framework"] = *req.Framework, *req.Framework
	}
	if req.Design != nil && ok("design") {
		m.Design, fields["design"] = *req.Design, *req.Design
	}
	if req.Labels != nil && ok("labels") {
		m.Labels, fields["labels"] = *req.Labels, *req.Labels
	}
	if req.Ready != nil && ok("ready") {
		m.Ready, fields["ready"] = *req.Ready, *req.Ready
	}
	if req.UICache != nil && ok("ui_cache") {
		m.UICache, fields["ui_cache"] = *req.UICache, *req.UICache
	}
	if req.Metadata != nil && ok("metadata") {
		md, err := metadataMap(*req.Metadata)
		if err != nil {
			return nil, err
		}
		m.Metadata, fields["metadata"] = md, md
	}
	if req.Project != nil && ok("project") {
		if *req.Project != "" {
			if _, err := s.getProject(tx, c, *req.Project); err != nil {
				return nil, err
			}
		}
		m.Project, fields["project"] = *req.Project, *req.Project
	}
	if req.Parent != nil && ok("parent") {
		if *req.Parent != "" && *req.Parent != m.ID {
			if _, err := s.getModel(tx, c, *req.Parent); err != nil {
				return nil, api.ErrInvalidModelID.New("parent model not found", "parent", *req.Parent)
			}
		}
		m.Parent, fields["parent"] = *req.Parent, *req.Parent
	}
	if req.Task != nil && ok("task") {
		if *req.Task != "" {
			if _, err := s.getTask(tx, c, *req.Task, api.ErrInvalidTaskID); err != nil {
				return nil, err
			}
		}
		m.Task, fields["task"] = *req.Task, *req.Task
	}
	if req.Iteration != nil && ok("iteration") {
		it := *req.Iteration
		m.LastIter, fields["last_iteration"] = &it, it
		if m.Task != "" {
			if err := s.bumpTaskIteration(tx, c, m.Task, it); err != nil {
				return nil, err
			}
		}
	}
	now := s.now()
	m.LastUpdate, fields["last_update"] = &now, now
	return fields, nil
}

// bumpTaskIteration raises a task's last_iteration to iter (a model edit
// with an iteration reports progress of the task that made it).
func (s *Server) bumpTaskIteration(tx store.Tx, c *call, taskID string, iter int64) error {
	t, err := s.getTask(tx, c, taskID, api.ErrInvalidTaskID)
	if err != nil {
		if api.ErrInvalidTaskID.Is(err) {
			return nil // the creating task is gone; the model keeps its number
		}
		return err
	}
	if iter <= t.LastIteration {
		return nil
	}
	t.LastIteration = iter
	return tx.PutTask(t)
}

func modelsCreate(s *Server, c *call) (any, error) {
	var req api.ModelRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.URI == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "uri")
	}
	if req.Name == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "name")
	}
	now := s.now()
	m := &api.Model{ID: newID(), User: c.ident.User, Company: c.ident.Company, Created: &now,
		Tags: []string{}, SystemTags: []string{}}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		if _, err := s.applyModelFields(tx, c, m, &req, nil); err != nil {
			return err
		}
		return tx.PutModel(m)
	})
	if err != nil {
		return nil, err
	}
	return api.ModelCreateResponse{ID: m.ID, Created: true}, nil
}

func modelsGetByID(s *Server, c *call) (any, error) {
	var req api.ModelRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var m *api.Model
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		m, err = s.getModel(tx, c, req.Model)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"model": modelView(m)}, nil
}

func modelsGetAll(s *Server, c *call) (any, error) {
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
	q := store.ModelQuery{Company: c.ident.Company}
	if len(req.ID) > 0 {
		q.IDs = req.ID
	}
	q.Tasks = plainTerms(body["task"])
	var models []*api.Model
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		if err := expandSubprojects(tx, c, body, extra.IncludeSubprojects); err != nil {
			return err
		}
		q.Projects = plainTerms(body["project"])
		var err error
		models, err = tx.Models(q)
		return err
	})
	if err != nil {
		return nil, err
	}
	filter, err := compileFilter(body, modelFilters)
	if err != nil {
		return nil, err
	}
	docs := make([]map[string]any, 0, len(models))
	hideHidden := !req.SearchHidden && len(req.ID) == 0
	for _, m := range models {
		if hideHidden && slices.Contains(m.SystemTags, "hidden") {
			continue
		}
		doc := modelView(m)
		if filter.match(doc) {
			docs = append(docs, doc)
		}
	}
	order := []string(req.OrderBy)
	if len(order) == 0 {
		order = []string{"created"}
	}
	sortDocs(docs, order)
	return listResponse(c, "models", docs, &req)
}

// expandSubprojects adds every descendant of the body's project filter to
// it, for include_subprojects (tasks.get_all and models.get_all).
func expandSubprojects(tx store.Tx, c *call, body map[string]any, include bool) error {
	projects := plainTerms(body["project"])
	if projects == nil || !include {
		return nil
	}
	all, err := tx.Projects(c.ident.Company)
	if err != nil {
		return err
	}
	projects = withSubprojects(projects, all)
	list := make([]any, len(projects))
	for i, p := range projects {
		list[i] = p
	}
	body["project"] = list
	return nil
}

// withSubprojects adds every descendant of the given projects.
func withSubprojects(ids []string, all []*api.Project) []string {
	out := slices.Clone(ids)
	for _, id := range ids {
		i := slices.IndexFunc(all, func(p *api.Project) bool { return p.ID == id })
		if i < 0 {
			continue
		}
		prefix := all[i].Name + "/"
		for _, p := range all {
			if strings.HasPrefix(p.Name, prefix) && !slices.Contains(out, p.ID) {
				out = append(out, p.ID)
			}
		}
	}
	return out
}

func modelsEdit(s *Server, c *call) (any, error) {
	return editModel(s, c, nil)
}

// modelsUpdate writes only the user-settable fields (reference models.update).
func modelsUpdate(s *Server, c *call) (any, error) {
	return editModel(s, c, []string{"name", "comment", "tags", "system_tags", "ready", "ui_cache", "project", "task", "iteration"})
}

func editModel(s *Server, c *call, allowed []string) (any, error) {
	var req api.ModelRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var fields map[string]any
	err := s.withModel(c, req.Model, func(tx store.Tx, m *api.Model) error {
		var err error
		fields, err = s.applyModelFields(tx, c, m, &req, allowed)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateResponse{Updated: 1, Fields: fields}, nil
}

func modelsAddOrUpdateMetadata(s *Server, c *call) (any, error) {
	var req api.ModelMetadataRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Metadata == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "metadata")
	}
	add, err := metadataMap(req.Metadata)
	if err != nil {
		return nil, err
	}
	err = s.withModel(c, req.Model, func(tx store.Tx, m *api.Model) error {
		if m.Metadata == nil || req.Replace {
			m.Metadata = map[string]any{}
		}
		maps.Copy(m.Metadata, add)
		now := s.now()
		m.LastUpdate = &now
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": 1}, nil
}

func modelsDeleteMetadata(s *Server, c *call) (any, error) {
	var req api.ModelMetadataRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Keys == nil {
		return nil, api.ErrMissingRequiredFields.New("", "field", "keys")
	}
	updated := 0
	err := s.withModel(c, req.Model, func(tx store.Tx, m *api.Model) error {
		for _, k := range req.Keys {
			if _, ok := m.Metadata[k]; ok {
				delete(m.Metadata, k)
				updated = 1
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"updated": updated}, nil
}
