package server

import (
	"net/http"

	"github.com/goclearml/agent/internal/api"
)

// GuestRole is the read-only role: a guest may read everything its company
// has (through the API, the file server and the web UI) and change
// nothing, as the reference documents the role ("Guest user. Read Only.").
const GuestRole = "guest"

// guestEndpoints are the endpoints a guest may call: the readers, and its
// own login and logout.
var guestEndpoints = map[string]bool{
	"auth.login": true, "auth.logout": true, "debug.ping": true, "server.info": true,
	"users.get_current_user": true, "users.get_all": true,
	"projects.get_all": true, "projects.get_by_id": true,
	"queues.get_all": true, "queues.get_by_id": true, "queues.get_default": true, "queues.peek_task": true,
	"queues.get_num_entries": true,
	"tasks.get_by_id":        true, "tasks.get_all": true, "tasks.get_hyper_params": true,
	"tasks.get_configurations": true, "tasks.get_configuration_names": true,
	"models.get_by_id": true, "models.get_all": true,
	"workers.get_all": true, "workers.get_runtime_properties": true, "workers.get_stats": true,
	"events.get_task_log": true, "events.get_task_events": true, "events.scalar_metrics_iter_histogram": true,
	"events.get_scalar_metrics_and_variants": true, "events.get_task_plots": true, "events.debug_images": true,
}

// checkRole refuses a guest's call to an endpoint that changes something.
func checkRole(endpoint string, ident api.Identity) error {
	if ident.Role == GuestRole && !guestEndpoints[endpoint] {
		return api.ErrRoleNotAllowed.New("guest users are read-only", "endpoint", endpoint)
	}
	return nil
}

// checkFileRole lets a guest download files, not upload or delete them.
func checkFileRole(r *http.Request, ident api.Identity) error {
	if ident.Role == GuestRole && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return api.ErrRoleNotAllowed.New("guest users are read-only")
	}
	return nil
}
