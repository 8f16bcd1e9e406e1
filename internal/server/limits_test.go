package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// manyIDs returns n distinct ids that name no object, after the given real
// ones.
func manyIDs(real []string, n int) []string {
	out := append([]string{}, real...)
	for i := len(out); i < n; i++ {
		out = append(out, fmt.Sprintf("%032x", i))
	}
	return out
}

// TestLargeIDLists: endpoints that take id lists answer a list far over
// SQLite's 32,766-variable limit (tasks.get_all with 33,000 ids answered
// 500 "too many SQL variables"), and refuse a list over the documented
// 100,000-item limit with a 400 that says so, changing nothing.
func TestLargeIDLists(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		project := c.ok("projects.create", map[string]any{"name": "listed project", "description": ""})["id"].(string)
		var tasks []string
		for range 3 {
			tasks = append(tasks, c.ok("tasks.create", map[string]any{"name": "listed task", "type": "training", "project": project})["id"].(string))
		}
		model := c.ok("models.create", map[string]any{"name": "listed model", "uri": "file:///m.pkl", "task": tasks[0]})["id"].(string)
		queue := c.defaultQueue()
		const large = 33_000
		ids := manyIDs(tasks, large)

		got := c.ok("tasks.get_all", map[string]any{"id": ids, "only_fields": []string{"id"}})["tasks"].([]any)
		if len(got) != len(tasks) {
			t.Fatalf("tasks.get_all with %d ids found %d tasks, want %d", large, len(got), len(tasks))
		}
		// The same ids as status and project lists (indexed columns too).
		got = c.ok("tasks.get_all", map[string]any{"status": manyIDs([]string{"created"}, large), "project": manyIDs([]string{project}, large)})["tasks"].([]any)
		if len(got) != len(tasks) {
			t.Fatalf("tasks.get_all with %d statuses and projects found %d tasks, want %d", large, len(got), len(tasks))
		}
		// A list filter applied to the documents.
		got = c.ok("tasks.get_all", map[string]any{"id": tasks, "tags": manyIDs(nil, large)})["tasks"].([]any)
		if len(got) != 0 {
			t.Fatalf("tasks.get_all with %d unknown tags found %d tasks", large, len(got))
		}
		got = c.ok("models.get_all", map[string]any{"id": manyIDs([]string{model}, large), "task": manyIDs([]string{tasks[0]}, large)})["models"].([]any)
		if len(got) != 1 {
			t.Fatalf("models.get_all with %d ids found %d models, want 1", large, len(got))
		}
		got = c.ok("queues.get_all", map[string]any{"id": manyIDs([]string{queue}, large)})["queues"].([]any)
		if len(got) != 1 {
			t.Fatalf("queues.get_all with %d ids found %d queues, want 1", large, len(got))
		}
		got = c.ok("projects.get_all", map[string]any{"id": manyIDs([]string{project}, large)})["projects"].([]any)
		if len(got) != 1 {
			t.Fatalf("projects.get_all with %d ids found %d projects, want 1", large, len(got))
		}
		res := c.ok("models.delete_many", map[string]any{"ids": manyIDs(nil, 1000)})
		if n := len(res["failed"].([]any)); n != 1000 {
			t.Fatalf("models.delete_many of 1,000 unknown ids: %d failed, want 1000", n)
		}

		const tooMany = 100_001
		before := stateSnapshot(c)
		for _, tc := range []struct {
			endpoint string
			body     map[string]any
		}{
			{"tasks.get_all", map[string]any{"id": manyIDs(tasks, tooMany)}},
			{"tasks.get_all", map[string]any{"tags": manyIDs(nil, tooMany)}},
			{"models.get_all", map[string]any{"id": manyIDs(nil, tooMany)}},
			{"queues.get_all", map[string]any{"id": manyIDs(nil, tooMany)}},
			{"models.delete_many", map[string]any{"ids": manyIDs([]string{model}, tooMany)}},
			{"models.publish_many", map[string]any{"ids": manyIDs([]string{model}, tooMany)}},
			{"tasks.archive", map[string]any{"tasks": manyIDs(tasks, tooMany)}},
			{"tasks.edit", map[string]any{"task": tasks[0], "tags": manyIDs(nil, tooMany)}},
		} {
			m := c.fail(tc.endpoint, tc.body, 400, 12)
			if !strings.Contains(m.ResultMsg, "100000") {
				t.Errorf("%s with %d ids: message %q does not state the limit", tc.endpoint, tooMany, m.ResultMsg)
			}
		}
		if after := stateSnapshot(c); fmt.Sprint(before) != fmt.Sprint(after) {
			t.Fatalf("refused calls changed the state")
		}
	})
}
