package server_test

import (
	"fmt"
	"strings"
	"testing"
)

func TestWorkers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		c.ok("workers.register", map[string]any{"worker": "host:0", "queues": []string{q}})
		c.fail("workers.register", map[string]any{"worker": "host:1", "queues": []string{"0123456789abcdef0123456789abcdef"}}, 400, 701)
		c.fail("workers.register", map[string]any{"worker": "host:1", "timeout": 0}, 400, 1002)
		id := c.createTask("worked on")
		c.ok("tasks.started", map[string]any{"task": id, "force": true})
		// As the agent sends it: nulls, extra keys, epoch ms.
		c.ok("workers.status_report", map[string]any{"worker": "host:0", "timestamp": 1795803282000, "task": id, "queue": q,
			"queues": []string{q}, "machine_stats": map[string]any{"cpu_usage": []float64{22.7}, "memory_used": 207.5}, "tags": nil, "is_daemon": true})
		// An unknown worker is registered by its report.
		c.ok("workers.status_report", map[string]any{"worker": "other:gpu0", "timestamp": 1795803282000, "machine_stats": nil, "tags": []string{"x"}})
		workers := c.ok("workers.get_all", nil)["workers"].([]any)
		if len(workers) != 2 {
			t.Fatalf("workers = %v", workers)
		}
		byID := map[string]map[string]any{}
		for _, w := range workers {
			byID[w.(map[string]any)["id"].(string)] = w.(map[string]any)
		}
		w := byID["host:0"]
		if w["task"].(map[string]any)["id"] != id || w["queue"].(map[string]any)["id"] != q || len(w["queues"].([]any)) != 1 {
			t.Fatalf("worker = %v", w)
		}
		if tk := c.task(id); tk["last_worker"] != "host:0" || tk["last_worker_report"] == nil {
			t.Fatalf("task after report = %v", tk)
		}
		if n := len(c.ok("workers.get_all", map[string]any{"worker_pattern": "other:gpu*"})["workers"].([]any)); n != 1 {
			t.Fatalf("worker_pattern matched %d", n)
		}
		// Idle report clears the task; an unknown task is 400/101 but the entry is kept.
		c.ok("workers.status_report", map[string]any{"worker": "host:0", "timestamp": 1795803287000})
		c.fail("workers.status_report", map[string]any{"worker": "host:0", "timestamp": 1, "task": "ffffffffffffffffffffffffffffffff"}, 400, 101)
		c.ok("workers.unregister", map[string]any{"worker": "host:0", "queues": []string{}})
		c.ok("workers.unregister", map[string]any{"worker": "never-registered"})
		if n := len(c.ok("workers.get_all", nil)["workers"].([]any)); n != 1 {
			t.Fatalf("after unregister %d workers", n)
		}
	})
}

func TestEventsLogAndScalars(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := c.createTask("chatty")
		var lines []string
		for i := range 30 {
			lines = append(lines, fmt.Sprintf(`{"type":"log","level":"INFO","task":%q,"worker":"w:0","msg":"line %02d","timestamp":%d}`, id, i, 1795803282000+int64(i/3)))
		}
		// One event for an unknown task: skipped and counted, the rest added.
		lines = append(lines, `{"type":"log","task":"ffffffffffffffffffffffffffffffff","msg":"x"}`, `{"type":"bogus","task":"`+id+`"}`)
		res := c.ok("events.add_batch", strings.Join(lines, "\n"))
		if res["added"] != 30.0 || res["errors"] != 2.0 {
			t.Fatalf("add_batch = %v", res)
		}
		c.fail("events.add_batch", `{"type":"log","task":"ffffffffffffffffffffffffffffffff","msg":"x"}`, 400, 131)
		c.fail("events.add_batch", "", 400, 17)
		// Oldest first, in pages, continuing from a timestamp cursor.
		var got []string
		from := any(nil)
		for range 10 {
			body := map[string]any{"task": id, "navigate_earlier": false, "batch_size": 7}
			if from != nil {
				body["from_timestamp"] = from
			}
			page := c.ok("events.get_task_log", body)
			evs := page["events"].([]any)
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				got = append(got, e.(map[string]any)["msg"].(string))
			}
			from = evs[len(evs)-1].(map[string]any)["timestamp"]
		}
		if len(got) != 30 || got[0] != "line 00" || got[29] != "line 29" {
			t.Fatalf("paged log = %v", got)
		}
		latest := c.ok("events.get_task_log", map[string]any{"task": id, "batch_size": 3, "order": "asc"})
		evs := latest["events"].([]any)
		if latest["total"] != 30.0 || evs[len(evs)-1].(map[string]any)["msg"] != "line 29" || evs[0].(map[string]any)["msg"] != "line 27" {
			t.Fatalf("latest asc = %v", latest)
		}
		// Scalars: re-sent points replace, last_iteration and last_metrics follow.
		sc := func(iter int, v float64) string {
			return fmt.Sprintf(`{"type":"training_stats_scalar","task":%q,"metric":"loss","variant":"train","iter":%d,"value":%g}`, id, iter, v)
		}
		c.ok("events.add_batch", strings.Join([]string{sc(0, 0.9), sc(1, 0.5), sc(2, 0.3), sc(2, 0.25),
			`{"type":"training_stats_scalar","task":"` + id + `","metric":":monitor:machine","variant":"cpu","iter":99,"value":1}`}, "\n"))
		hist := c.ok("events.scalar_metrics_iter_histogram", map[string]any{"task": id})
		train := hist["loss"].(map[string]any)["train"].(map[string]any)
		if fmt.Sprint(train["x"]) != "[0 1 2]" || fmt.Sprint(train["y"]) != "[0.9 0.5 0.25]" {
			t.Fatalf("histogram = %v", train)
		}
		tk := c.task(id)
		if tk["last_iteration"] != 2.0 || tk["last_metrics"] == nil {
			t.Fatalf("task after scalars: last_iteration=%v last_metrics=%v", tk["last_iteration"], tk["last_metrics"])
		}
	})
}

func TestProjects(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		// What the SDK does in Task.init.
		res := c.at("2.23").ok("projects.get_all", map[string]any{"name": "^p q$", "only_fields": []string{"id"}, "search_hidden": true, "method": "get"})
		if len(res["projects"].([]any)) != 0 {
			t.Fatalf("found a project before creating it")
		}
		id := c.at("2.23").ok("projects.create", map[string]any{"name": " team / p q ", "description": ""})["id"].(string)
		p := c.ok("projects.get_by_id", map[string]any{"project": id})["project"].(map[string]any)
		if p["name"] != "team/p q" || p["basename"] != "p q" || p["parent"] == nil {
			t.Fatalf("project = %v", p)
		}
		if n := len(c.ok("projects.get_all", map[string]any{"name": "^team$"})["projects"].([]any)); n != 1 {
			t.Fatalf("parent project not created (%d)", n)
		}
		c.fail("projects.create", map[string]any{"name": "team/p q"}, 400, 801)
		c.fail("projects.create", map[string]any{"name": "ab"}, 400, 12)
		c.fail("projects.get_by_id", map[string]any{"project": "nope"}, 400, 401)
		c.fail("tasks.create", map[string]any{"name": "in a bad project", "type": "training", "project": "nope"}, 400, 401)
		c.ok("projects.update", map[string]any{"project": id, "system_tags": []string{"pipeline"}})
	})
}
