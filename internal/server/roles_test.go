package server_test

import (
	"net/http"
	"testing"
)

// TestGuestRoleEndpoints: a guest reads tasks, queues, logs and files, and
// every call that would change something is refused with 403/20, the
// file server's uploads and deletions included.
func TestGuestRoleEndpoints(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := c.createTask("owned by the admin")
		c.ok("tasks.enqueue", map[string]any{"task": id})
		guest := c.asUser("visitor", "guest")
		for _, read := range []struct {
			endpoint string
			body     map[string]any
		}{
			{"tasks.get_all", nil},
			{"tasks.get_by_id", map[string]any{"task": id}},
			{"queues.get_all", nil},
			{"events.get_task_log", map[string]any{"task": id}},
			{"users.get_current_user", nil},
		} {
			guest.ok(read.endpoint, read.body)
		}
		q := c.defaultQueue()
		for _, write := range []struct {
			endpoint string
			body     map[string]any
		}{
			{"tasks.create", map[string]any{"name": "by a guest", "type": "training"}},
			{"tasks.stop", map[string]any{"task": id}},
			{"tasks.delete", map[string]any{"task": id}},
			{"queues.create", map[string]any{"name": "guest-queue"}},
			{"queues.move_task_to_front", map[string]any{"queue": q, "task": id}},
			{"queues.get_next_task", map[string]any{"queue": q}},
			{"events.add", map[string]any{"task": id, "type": "log", "msg": "x"}},
			{"auth.create_credentials", nil},
		} {
			guest.fail(write.endpoint, write.body, 403, 20)
		}
		if got := str(c.task(id)["status"]); got != "queued" {
			t.Fatalf("the task is %s after the guest's calls, want queued", got)
		}
		for method, allowed := range map[string]bool{"GET": true, "HEAD": true, "POST": false, "DELETE": false} {
			req, _ := http.NewRequest(method, c.ts.URL+"/files/p/f.txt", nil)
			req.Header.Set("Authorization", "Bearer "+guest.token)
			if err := c.ts.Srv.Authorize(req); (err == nil) != allowed {
				t.Errorf("guest %s on the file server: %v, want allowed=%v", method, err, allowed)
			}
		}
	})
}
