package server

import (
	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// usersGetAll lists the users of the caller's company (id, name, role),
// as the reference's users.get_all: filtered by id and name (a regular
// expression), ordered, paged and projected like the other listings. The
// web UI names the owners of tasks with it.
func usersGetAll(s *Server, c *call) (any, error) {
	var req api.GetAllRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	filter, err := compileFilter(c.raw(), userFilters)
	if err != nil {
		return nil, err
	}
	var users []*api.User
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		users, err = tx.Users(c.ident.Company)
		return err
	})
	if err != nil {
		return nil, err
	}
	wanted := idSet(req.ID)
	docs := []map[string]any{}
	for _, u := range users {
		if wanted != nil && !wanted[u.ID] {
			continue
		}
		doc := map[string]any{"id": u.ID, "name": u.Name, "given_name": u.Name, "family_name": "", "avatar": "",
			"role": u.Role, "company": map[string]any{"id": u.Company, "name": c.ident.CompanyName}}
		if u.Created != nil {
			doc["created"] = u.Created
		}
		if d := toDoc(doc); filter.match(d) {
			docs = append(docs, d)
		}
	}
	order := []string(req.OrderBy)
	if len(order) == 0 {
		order = []string{"name"}
	}
	sortDocs(docs, order)
	return listResponse(c, "users", docs, &req)
}

var userFilters = filterSpec{regexs: []string{"name"}}
