package server

import (
	"fmt"
	"net/http"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/fileserver"
)

// Roles. An admin manages users and may act as another user; a user may
// read and change every object of the company, other users' tasks
// included (edit, enqueue, stop, reset, delete), as on the reference
// server, which has no per-object permissions; a guest may only read.
const guestRole = "guest"

// guestEndpoints are the calls a guest may make: they read and change
// nothing (auth.login and auth.logout only make and end its own session).
var guestEndpoints = map[string]bool{
	"auth.login": true, "auth.logout": true, "debug.ping": true, "server.info": true, "users.get_current_user": true, "users.get_all": true,
	"projects.get_all": true, "projects.get_by_id": true,
	"queues.get_all": true, "queues.get_by_id": true, "queues.get_default": true, "queues.peek_task": true,
	"queues.get_num_entries": true,
	"tasks.get_by_id":        true, "tasks.get_all": true, "tasks.get_hyper_params": true, "tasks.get_configurations": true,
	"tasks.get_configuration_names": true, "tasks.wait_status": true,
	"models.get_by_id": true, "models.get_all": true,
	"workers.get_all": true, "workers.get_runtime_properties": true, "workers.get_stats": true,
	"events.get_task_log": true, "events.get_task_events": true, "events.scalar_metrics_iter_histogram": true,
	"events.get_scalar_metrics_and_variants": true, "events.get_task_plots": true, "events.debug_images": true,
	"events.get_task_single_value_metrics": true,
}

// checkRole refuses a call the caller's role may not make.
func checkRole(ident api.Identity, endpoint string) error {
	if ident.Role == guestRole && !guestEndpoints[endpoint] {
		return api.ErrRoleNotAllowed.New("the guest role is read-only", "endpoint", endpoint)
	}
	return nil
}

// fileMethodAllowed refuses the file server's changing methods to a
// guest: it may download, not upload or delete.
func fileMethodAllowed(ident api.Identity, method string) error {
	if ident.Role != guestRole {
		return nil
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	return fmt.Errorf("%w: the guest role is read-only", fileserver.ErrForbidden)
}
