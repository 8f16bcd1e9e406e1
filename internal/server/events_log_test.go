package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestTaskLogTiesAndTotal: a batch of events.get_task_log holds every event
// of its last timestamp however many share it, so paging by timestamp
// loses and repeats none; the total is capped at 10,000.
func TestTaskLogTiesAndTotal(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		task := c.createTask("ties")
		var b strings.Builder
		// 10,050 events: timestamps 1000..1049 once each, then 10,000 at
		// 2000 (the batch boundaries fall inside that run), then 3000.
		n := 0
		add := func(ts int64) {
			line, _ := json.Marshal(map[string]any{"type": "log", "task": task, "timestamp": ts, "msg": fmt.Sprint("line ", n)})
			b.Write(line)
			b.WriteByte('\n')
			n++
		}
		for i := range 50 {
			add(1000 + int64(i))
		}
		for range 9950 {
			add(2000)
		}
		for range 50 {
			add(3000)
		}
		if code, env := c.raw("events.add_batch", b.String()); code != 200 {
			t.Fatalf("add_batch: %d %s", code, env.Meta.ResultMsg)
		}
		for _, earlier := range []bool{false, true} {
			seen := map[string]bool{}
			var from any
			for pages := 0; pages < 100; pages++ {
				body := map[string]any{"task": task, "batch_size": 100, "navigate_earlier": earlier}
				if from != nil {
					body["from_timestamp"] = from
				}
				resp := c.ok("events.get_task_log", body)
				if resp["total"] != 10000.0 {
					t.Fatalf("total = %v, want 10000 (capped)", resp["total"])
				}
				events := resp["events"].([]any)
				if len(events) == 0 {
					break
				}
				for _, e := range events {
					msg := e.(map[string]any)["msg"].(string)
					if seen[msg] {
						t.Fatalf("navigate_earlier=%v: %s twice", earlier, msg)
					}
					seen[msg] = true
				}
				from = events[len(events)-1].(map[string]any)["timestamp"]
			}
			if len(seen) != n {
				t.Fatalf("navigate_earlier=%v: %d distinct events of %d", earlier, len(seen), n)
			}
		}
	})
}
