package server

import (
	"encoding/json"
	"net/http"

	"github.com/goclearml/agent/internal/store"

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

// OnLongPollWait makes s call f each time a queues.get_next_task long poll
// finds its queue empty and starts waiting, so that a test can enqueue
// exactly then.
func OnLongPollWait(s *Server, f func(queue string)) {
	s.waker.mu.Lock()
	defer s.waker.mu.Unlock()
	s.waker.onWait = f
}

// HealthHandler is the /healthz wrapper Run puts in front of the API.
func HealthHandler(next http.Handler, st store.Store, draining func() bool) http.Handler {
	return withHealth(next, st, draining)
}
