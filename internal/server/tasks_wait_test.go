package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// tasks.wait_status (our extension) answers at once when the task's
// status or message differ from the caller's, holds the call until a
// change otherwise (a tasks.stop wakes it), and answers unchanged when
// the wait ends.
func TestTasksWaitStatus(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := c.createTask("watched")
		c.ok("tasks.started", map[string]any{"task": id, "force": true, "status_message": "running"})
		got := c.ok("tasks.wait_status", map[string]any{"task": id, "status": "created", "wait_ms": 30000})
		if got["status"] != "in_progress" || got["status_message"] != "running" || got["changed"] != true {
			t.Fatalf("different status = %v", got)
		}
		got = c.ok("tasks.wait_status", map[string]any{"task": id, "status": "in_progress", "status_message": "running", "wait_ms": 50})
		if got["changed"] != false || got["status"] != "in_progress" {
			t.Fatalf("after the wait = %v", got)
		}
		type answer struct {
			data  map[string]any
			taken time.Duration
		}
		done := make(chan answer, 1)
		body := `{"task": "` + id + `", "status": "in_progress", "status_message": "running", "wait_ms": 60000}`
		req, _ := http.NewRequest("GET", c.ts.URL+"/tasks.wait_status", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		go func() {
			start := time.Now()
			var a answer
			resp, err := http.DefaultClient.Do(req)
			a.taken = time.Since(start)
			if err == nil {
				var env api.Envelope
				if json.NewDecoder(resp.Body).Decode(&env) == nil && env.Meta.ResultCode == 200 {
					json.Unmarshal(env.Data, &a.data)
				}
				resp.Body.Close()
			}
			done <- a
		}()
		c.ok("tasks.stop", map[string]any{"task": id})
		a := <-done
		// The wait was 60 s; a wake answers long before (the bound is a
		// fail-safe for a loaded machine, not a measurement).
		if a.data == nil || a.data["changed"] != true || a.taken > 30*time.Second {
			t.Fatalf("held call after tasks.stop = %v after %v", a.data, a.taken)
		}
		if msg, _ := a.data["status_message"].(string); a.data["status"] == "in_progress" && msg == "running" {
			t.Fatalf("answer shows no change: %v", a.data)
		}
		c.fail("tasks.wait_status", map[string]any{"task": "no-such-task", "wait_ms": 10}, 400, api.ErrInvalidTaskID.Subcode)
		c.fail("tasks.wait_status", map[string]any{"task": id, "wait_ms": -1}, 400, api.ErrValidation.Subcode)
	})
}
