package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// The guest role reads and changes nothing: before, a guest could edit,
// enqueue, stop, reset and delete other users' tasks and delete any file.
func TestGuestIsReadOnly(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		guestID := c.ok("auth.create_user", map[string]any{"name": "visitor", "role": "guest"})["id"].(string)
		creds := c.ok("auth.create_credentials", map[string]any{"user": guestID})["credentials"].(map[string]any)
		req, _ := http.NewRequest("GET", c.ts.URL+"/auth.login", nil)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(creds["access_key"].(string)+":"+creds["secret_key"].(string))))
		code, env := do(t, req)
		if code != 200 {
			t.Fatalf("guest login: %d %s", code, env.Meta.ResultMsg)
		}
		var login struct{ Token string }
		json.Unmarshal(env.Data, &login)
		guest := *c.client
		guest.token = login.Token
		gf := &filesClient{client: &guest, files: c.files}

		task := c.ok("tasks.create", map[string]any{"name": "the admin's task", "type": "training"})["id"].(string)
		queued := c.ok("tasks.create", map[string]any{"name": "queued", "type": "training"})["id"].(string)
		c.ok("tasks.enqueue", map[string]any{"task": queued})
		fileURL := c.upload("team/model.bin", []byte("weights"))

		// Reading works.
		for _, call := range []struct {
			endpoint string
			body     map[string]any
		}{
			{"tasks.get_all", map[string]any{}}, {"tasks.get_by_id", map[string]any{"task": task}},
			{"queues.get_all", map[string]any{}}, {"events.get_task_log", map[string]any{"task": task}},
			{"users.get_current_user", map[string]any{}}, {"workers.get_all", map[string]any{}},
			{"projects.get_all", map[string]any{}}, {"models.get_all", map[string]any{}}, {"server.info", map[string]any{}},
		} {
			guest.ok(call.endpoint, call.body)
		}
		if code, body := gf.fileRequest("GET", fileURL); code != 200 || string(body) != "weights" {
			t.Errorf("guest download: %d %s", code, body)
		}
		before := stateSnapshot(c.client)
		// Changing does not.
		for _, call := range []struct {
			endpoint string
			body     map[string]any
		}{
			{"tasks.edit", map[string]any{"task": task, "name": "renamed"}},
			{"tasks.enqueue", map[string]any{"task": task}},
			{"tasks.stop", map[string]any{"task": queued, "force": true}},
			{"tasks.reset", map[string]any{"task": queued, "force": true}},
			{"tasks.delete", map[string]any{"task": task, "force": true}},
			{"tasks.create", map[string]any{"name": "guest's", "type": "training"}},
			{"queues.get_next_task", map[string]any{"queue": c.defaultQueue()}},
			{"queues.create", map[string]any{"name": "guest queue"}},
			{"projects.create", map[string]any{"name": "guest project", "description": ""}},
			{"models.create", map[string]any{"name": "guest model", "uri": "file:///m"}},
			{"events.add", map[string]any{"task": task, "type": "log", "msg": "hi"}},
			{"workers.register", map[string]any{"worker": "guest-worker"}},
			{"auth.create_credentials", map[string]any{}},
		} {
			guest.fail(call.endpoint, call.body, 403, 20)
		}
		for _, method := range []string{"DELETE"} {
			if code, body := gf.fileRequest(method, fileURL); code != http.StatusForbidden {
				t.Errorf("guest %s of a file: %d %s", method, code, body)
			}
		}
		if code, body := gf.fileRequest("POST", c.files+"/delete_many"); code != http.StatusForbidden {
			t.Errorf("guest delete_many: %d %s", code, body)
		}
		if after := stateSnapshot(c.client); fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("the guest's calls changed the state")
		}
		if code, body := c.fileRequest("GET", fileURL); code != 200 || string(body) != "weights" {
			t.Errorf("the file is gone: %d %s", code, body)
		}
	})
}
