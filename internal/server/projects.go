package server

import (
	"errors"
	"slices"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func (s *Server) getProject(tx store.Tx, c *call, id string) (*api.Project, error) {
	if id == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "project")
	}
	p, err := tx.Project(id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.Company != c.ident.Company && p.Company != "") {
		return nil, api.ErrInvalidProjectID.New("", "id", id)
	}
	return p, err
}

// normalizeProjectName drops empty path segments and the white space
// around segments ("a / b//c" is "a/b/c").
func normalizeProjectName(name string) (string, error) {
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "", api.ErrInvalidProjectName.New("Project name cannot be empty", "name", name)
	}
	// The reference's minimum length applies to the full name: "team/cv"
	// is a valid project name.
	full := strings.Join(parts, "/")
	if len(full) < 3 {
		return "", api.ErrValidation.New("Project name must be at least 3 characters", "name", name)
	}
	return full, nil
}

// ensureProject returns the project of that full name, creating it and its
// missing parents.
func (s *Server) ensureProject(tx store.Tx, c *call, name string) (*api.Project, bool, error) {
	full, err := normalizeProjectName(name)
	if err != nil {
		return nil, false, err
	}
	projects, err := tx.Projects(c.ident.Company)
	if err != nil {
		return nil, false, err
	}
	for _, p := range projects {
		if p.Name == full {
			return p, false, nil
		}
	}
	p, err := s.createProjectPath(tx, c, full, projects, api.ProjectCreateRequest{})
	return p, true, err
}

func (s *Server) createProjectPath(tx store.Tx, c *call, full string, existing []*api.Project, req api.ProjectCreateRequest) (*api.Project, error) {
	parts := strings.Split(full, "/")
	parent := ""
	now := s.now()
	var created *api.Project
	for i := range parts {
		path := strings.Join(parts[:i+1], "/")
		idx := slices.IndexFunc(existing, func(p *api.Project) bool { return p.Name == path })
		last := i == len(parts)-1
		if idx >= 0 && !last {
			parent = existing[idx].ID
			continue
		}
		if idx >= 0 && last {
			return nil, api.ErrExpectedUniqueData.New("", "name", full)
		}
		if len(path) < 3 {
			// A parent made on the way is a project too: "ab/cd" needs "ab".
			return nil, api.ErrValidation.New("Project name must be at least 3 characters", "name", path)
		}
		p := &api.Project{ID: newID(), Name: path, Basename: parts[i], User: c.ident.User, Company: c.ident.Company,
			Created: &now, LastUpdate: &now, Tags: []string{}, SystemTags: []string{}, Parent: parent}
		if last {
			p.Description = req.Description
			p.Tags, p.SystemTags = sortedTags(req.Tags), sortedTags(req.SystemTags)
			p.DefaultOutputDestination = req.DefaultOutputDestination
		}
		ok, err := tx.InsertProject(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, api.ErrExpectedUniqueData.New("", "name", path)
		}
		existing = append(existing, p)
		parent, created = p.ID, p
	}
	return created, nil
}

func projectsCreate(s *Server, c *call) (any, error) {
	var req api.ProjectCreateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if _, ok := c.raw()["name"]; !ok {
		return nil, api.ErrMissingRequiredFields.New("", "field", "name")
	}
	full, err := normalizeProjectName(req.Name)
	if err != nil {
		return nil, err
	}
	var p *api.Project
	err = s.store.Update(c.ctx, func(tx store.Tx) error {
		projects, err := tx.Projects(c.ident.Company)
		if err != nil {
			return err
		}
		p, err = s.createProjectPath(tx, c, full, projects, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.IDResponse{ID: p.ID}, nil
}

func projectsGetByID(s *Server, c *call) (any, error) {
	var req struct {
		Project string `json:"project"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	var p *api.Project
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		p, err = s.getProject(tx, c, req.Project)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"project": p}, nil
}

func projectsGetAll(s *Server, c *call) (any, error) {
	var req api.GetAllRequest
	var extra struct {
		ShallowSearch bool           `json:"shallow_search"`
		Parent        api.StringList `json:"parent"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if err := c.decode(&extra); err != nil {
		return nil, err
	}
	body := c.raw()
	if extra.ShallowSearch {
		delete(body, "parent") // handled below: direct children only
	}
	filter, err := compileFilter(body, projectFilters)
	if err != nil {
		return nil, err
	}
	var projects []*api.Project
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		projects, err = tx.Projects(c.ident.Company)
		return err
	})
	if err != nil {
		return nil, err
	}
	var docs []map[string]any
	wanted := idSet(req.ID)
	for _, p := range projects {
		if wanted != nil && !wanted[p.ID] {
			continue
		}
		if !req.SearchHidden && len(req.ID) == 0 && slices.Contains(p.SystemTags, "hidden") {
			continue
		}
		if extra.ShallowSearch {
			if len(extra.Parent) == 0 && p.Parent != "" || len(extra.Parent) > 0 && !slices.Contains(extra.Parent, p.Parent) {
				continue
			}
		}
		doc := toDoc(p)
		if filter.match(doc) {
			docs = append(docs, doc)
		}
	}
	sortDocs(docs, req.OrderBy)
	return listResponse(c, "projects", docs, &req)
}

func projectsUpdate(s *Server, c *call) (any, error) {
	var req api.ProjectUpdateRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	fields := map[string]any{}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		p, err := s.getProject(tx, c, req.Project)
		if err != nil {
			return err
		}
		if p.Company == "" {
			return api.ErrNoWritePermission.New("", "id", p.ID)
		}
		if req.Name != nil {
			full, err := normalizeProjectName(*req.Name)
			if err != nil {
				return err
			}
			if full != p.Name {
				others, err := tx.Projects(c.ident.Company)
				if err != nil {
					return err
				}
				if slices.ContainsFunc(others, func(o *api.Project) bool { return o.Name == full }) {
					return api.ErrExpectedUniqueData.New("", "name", full)
				}
			}
			p.Name, fields["name"] = full, full
			p.Basename = full[strings.LastIndex(full, "/")+1:]
		}
		if req.Description != nil {
			p.Description, fields["description"] = *req.Description, *req.Description
		}
		if req.Tags != nil {
			p.Tags = sortedTags(*req.Tags)
			fields["tags"] = p.Tags
		}
		if req.SystemTags != nil {
			p.SystemTags = sortedTags(*req.SystemTags)
			fields["system_tags"] = p.SystemTags
		}
		if req.DefaultOutputDestination != nil {
			p.DefaultOutputDestination, fields["default_output_destination"] = *req.DefaultOutputDestination, *req.DefaultOutputDestination
		}
		now := s.now()
		p.LastUpdate = &now
		fields["last_update"] = now
		return tx.PutProject(p)
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateResponse{Updated: 1, Fields: fields}, nil
}
