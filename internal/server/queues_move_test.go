package server_test

import (
	"fmt"
	"testing"
)

// TestQueueMoves: move_task_forward, _backward, _to_front and _to_back
// reorder a queue, answer the new position, and the workers' next tasks
// follow the new order; bad requests get the reference's errors.
func TestQueueMoves(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		var ids []string
		for i := range 5 {
			id := c.createTask(fmt.Sprintf("queued-%d", i))
			c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
			ids = append(ids, id)
		}
		order := func() string {
			var out string
			for _, e := range c.ok("queues.get_by_id", map[string]any{"queue": q})["queue"].(map[string]any)["entries"].([]any) {
				for i, id := range ids {
					if e.(map[string]any)["task"] == id {
						out += fmt.Sprint(i)
					}
				}
			}
			return out
		}
		for _, step := range []struct {
			endpoint string
			task     int
			count    int
			pos      float64
			want     string
		}{
			{"queues.move_task_to_front", 3, 0, 0, "30124"},
			{"queues.move_task_backward", 3, 2, 2, "01324"},
			{"queues.move_task_forward", 4, 1, 3, "01342"},
			{"queues.move_task_forward", 2, 10, 0, "20134"},
			{"queues.move_task_to_back", 2, 0, 4, "01342"},
			{"queues.move_task_backward", 3, 10, 4, "01423"},
		} {
			body := map[string]any{"queue": q, "task": ids[step.task]}
			if step.count > 0 {
				body["count"] = step.count
			}
			got := c.ok(step.endpoint, body)["position"]
			if got != step.pos || order() != step.want {
				t.Fatalf("%s %d: position %v, order %s; want %v, %s", step.endpoint, step.task, got, order(), step.pos, step.want)
			}
		}
		next := c.ok("queues.get_next_task", map[string]any{"queue": q})["entry"].(map[string]any)["task"]
		if next != ids[0] {
			t.Fatalf("next task %v, want %s", next, ids[0])
		}
		other := c.createTask("not queued")
		c.fail("queues.move_task_to_front", map[string]any{"queue": q, "task": other}, 400, 703)
		c.fail("queues.move_task_to_front", map[string]any{"queue": "nope", "task": ids[1]}, 400, 701)
		c.fail("queues.move_task_forward", map[string]any{"queue": q, "task": ids[1], "count": 0}, 400, 12)
		c.fail("queues.move_task_to_back", map[string]any{"queue": q}, 400, 11)
	})
}
