package server_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
)

// TestModelsBadInput: the new endpoints answer client mistakes with clear
// 4xx errors and change nothing.
func TestModelsBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		task := c.createTask("model maker")
		mid := c.ok("models.create", map[string]any{"uri": "file:///m.pt", "name": "kept model", "task": task})["id"].(string)
		snapshot := func() any {
			return []any{c.ok("models.get_all", map[string]any{"search_hidden": true})["models"], c.task(task)}
		}
		before := snapshot()
		for _, tc := range []struct {
			name, endpoint string
			body           any
			code, subcode  int
		}{
			{"create without uri", "models.create", map[string]any{"name": "m"}, 400, 11},
			{"create without name", "models.create", map[string]any{"uri": "file:///x"}, 400, 11},
			{"create with blank name", "models.create", map[string]any{"uri": "file:///x", "name": "  "}, 400, 800},
			{"create for unknown task", "models.create", map[string]any{"uri": "file:///x", "name": "m", "task": unknownID}, 400, 101},
			{"create in unknown project", "models.create", map[string]any{"uri": "file:///x", "name": "m", "project": unknownID}, 400, 401},
			{"create with unknown parent", "models.create", map[string]any{"uri": "file:///x", "name": "m", "parent": unknownID}, 400, 201},
			{"labels not a map", "models.create", map[string]any{"uri": "file:///x", "name": "m", "labels": []int{1}}, 400, 12},
			{"unknown model", "models.get_by_id", map[string]any{"model": unknownID}, 400, 201},
			{"get without model", "models.get_by_id", map[string]any{}, 400, 11},
			{"edit unknown", "models.edit", map[string]any{"model": unknownID, "name": "x"}, 400, 201},
			{"edit with bad metadata", "models.edit", map[string]any{"model": mid, "metadata": []any{map[string]any{"value": "v"}}}, 400, 12},
			{"bad name regex", "models.get_all", map[string]any{"name": "(["}, 400, 21},
			{"update_for_task without uri", "models.update_for_task", map[string]any{"task": task}, 400, 11},
			{"update_for_task with both", "models.update_for_task", map[string]any{"task": task, "uri": "u", "override_model_id": mid}, 400, 11},
			{"update_for_task unknown task", "models.update_for_task", map[string]any{"task": unknownID, "uri": "u"}, 400, 101},
			{"delete unknown", "models.delete", map[string]any{"model": unknownID}, 400, 201},
			{"publish_many without ids", "models.publish_many", map[string]any{}, 400, 11},
			{"task model of unknown model", "tasks.add_or_update_model", map[string]any{"task": task, "name": "n", "model": unknownID, "type": "input"}, 400, 201},
			{"task model bad type", "tasks.add_or_update_model", map[string]any{"task": task, "name": "n", "model": mid, "type": "both"}, 400, 12},
			{"task model without name", "tasks.add_or_update_model", map[string]any{"task": task, "model": mid, "type": "input"}, 400, 11},
			{"delete_models without models", "tasks.delete_models", map[string]any{"task": task}, 400, 11},
			{"debug_images without metrics", "events.debug_images", map[string]any{"task": task}, 400, 11},
			{"debug_images bad scroll", "events.debug_images", map[string]any{"metrics": []any{map[string]any{"task": task}}, "scroll_id": "!!"}, 400, 12},
			{"debug_images zero iters", "events.debug_images", map[string]any{"metrics": []any{map[string]any{"task": task}}, "iters": 0}, 400, 12},
			{"debug_images unknown task", "events.debug_images", map[string]any{"metrics": []any{map[string]any{"task": unknownID}}}, 400, 101},
			{"plots unknown task", "events.get_task_plots", map[string]any{"task": unknownID}, 400, 101},
			{"plots bad scroll", "events.get_task_plots", map[string]any{"task": task, "scroll_id": "x"}, 400, 12},
			{"model events of unknown model", "events.get_task_plots", map[string]any{"task": task, "model_events": true}, 400, 201},
			{"set properties without worker", "workers.set_runtime_properties", map[string]any{"runtime_properties": []any{}}, 400, 11},
			{"property without key", "workers.set_runtime_properties", map[string]any{"worker": "w", "runtime_properties": []any{map[string]any{"value": "v"}}}, 400, 12},
			{"property value an object", "workers.set_runtime_properties", map[string]any{"worker": "w", "runtime_properties": []any{map[string]any{"key": "k", "value": map[string]any{}}}}, 400, 12},
			{"negative expiry", "workers.set_runtime_properties", map[string]any{"worker": "w", "runtime_properties": []any{map[string]any{"key": "k", "value": "v", "expiry": -1}}}, 400, 12},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cc := *c
				cc.t = t
				cc.fail(tc.endpoint, tc.body, tc.code, tc.subcode)
			})
		}
		if after := snapshot(); !reflect.DeepEqual(before, after) {
			t.Fatalf("failed calls changed the state:\nbefore %v\nafter  %v", before, after)
		}
		if props := c.ok("workers.get_runtime_properties", map[string]any{"worker": "w"})["runtime_properties"].([]any); len(props) != 0 {
			t.Fatalf("refused set_runtime_properties stored %v", props)
		}
		// The model's own events (OutputModel.report_scalar) are accepted.
		c.ok("events.add_batch", `{"type": "plot", "task": "`+mid+`", "model_event": true, "iter": 2, "metric": "m", "variant": "v", "plot_str": "{}"}`)
		if n := len(c.ok("events.get_task_plots", map[string]any{"task": mid, "model_events": true})["plots"].([]any)); n != 1 {
			t.Fatalf("model plots: %d", n)
		}
	})
}

// TestWorkerRuntimeProperties: set, replace, read back, expire; per worker.
func TestWorkerRuntimeProperties(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clk := &testClock{now: time.Now().UTC()}
			c := newTestServer(t, b.open(t), server.Options{Now: clk.Now})
			c.ok("workers.set_runtime_properties", map[string]any{"worker": "host:0", "runtime_properties": []any{
				map[string]any{"key": "force", "value": "on"}, map[string]any{"key": "slots", "value": 2},
				map[string]any{"key": "short", "value": "lived", "expiry": 60}}})
			c.ok("workers.set_runtime_properties", map[string]any{"worker": "host:0", "runtime_properties": []any{
				map[string]any{"key": "force", "value": "off"}}})
			c.ok("workers.set_runtime_properties", map[string]any{"worker": "other:0", "runtime_properties": []any{
				map[string]any{"key": "force", "value": "on"}}})
			props := func(w string) map[string]any {
				out := map[string]any{}
				for _, p := range c.ok("workers.get_runtime_properties", map[string]any{"worker": w})["runtime_properties"].([]any) {
					p := p.(map[string]any)
					out[p["key"].(string)] = p["value"]
				}
				return out
			}
			if got := props("host:0"); !reflect.DeepEqual(got, map[string]any{"force": "off", "slots": "2", "short": "lived"}) {
				t.Fatalf("properties = %v", got)
			}
			clk.Advance(61 * time.Second)
			if got := props("host:0"); !reflect.DeepEqual(got, map[string]any{"force": "off", "slots": "2"}) {
				t.Fatalf("after expiry = %v", got)
			}
			if got := props("other:0"); !reflect.DeepEqual(got, map[string]any{"force": "on"}) {
				t.Fatalf("other worker = %v", got)
			}
		})
	}
}
