package server

import (
	"encoding/json"

	"github.com/goclearml/agent/internal/api"
)

// SetFastTaskList turns the paged task listing (tasks_page.go) on or off.
func (s *Server) SetFastTaskList(on bool) { s.noFastList = !on }

// FastTaskListable reports whether tasks.get_all serves body from the
// listing table.
func FastTaskListable(body map[string]any) bool {
	raw, _ := json.Marshal(body)
	c := &call{}
	if parseBody(c, raw, nil) != nil {
		return false
	}
	var req api.GetAllRequest
	if c.decode(&req) != nil {
		return false
	}
	_, ok := fastPageQuery(&req, c.raw())
	return ok
}
