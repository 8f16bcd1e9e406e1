package server_test

import (
	"fmt"
	"slices"
	"testing"
)

func TestTaskLifecycleAsAgent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := c.createTask("lifecycle")
		if got := c.task(id); got["status"] != "created" || got["status_message"] != "" || len(str(got["id"])) != 32 {
			t.Fatalf("new task = %v", got)
		}
		q := c.defaultQueue()
		resp := c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		fields := resp["fields"].(map[string]any)
		if resp["queued"] != 1.0 || fields["status"] != "queued" || fields["execution.queue"] != q {
			t.Fatalf("enqueue = %v", resp)
		}
		c.fail("tasks.enqueue", map[string]any{"task": id, "queue": q}, 400, 706)
		if n := c.ok("queues.get_num_entries", map[string]any{"queue": q})["num"]; n != 1.0 {
			t.Fatalf("entries after double enqueue = %v", n)
		}
		next := c.at("2.14").ok("queues.get_next_task", map[string]any{"queue": q})
		if next["entry"].(map[string]any)["task"] != id {
			t.Fatalf("get_next_task = %v", next)
		}
		if st := c.task(id)["status"]; st != "queued" {
			t.Fatalf("get_next_task changed status to %v", st)
		}
		if empty := c.ok("queues.get_next_task", map[string]any{"queue": q}); len(empty) != 0 {
			t.Fatalf("empty queue answer = %v, want {}", empty)
		}
		c.at("2.5").ok("tasks.started", map[string]any{"task": id, "force": true, "status_message": "pulled by agent"})
		started := c.task(id)["started"]
		c.ok("tasks.dequeue", map[string]any{"task": id, "new_status": "in_progress"})
		c.at("2.5").ok("tasks.started", map[string]any{"task": id, "force": true, "status_reason": "worker started execution"})
		tk := c.task(id)
		if tk["status"] != "in_progress" || tk["started"] != started || tk["status_reason"] != "worker started execution" {
			t.Fatalf("after started = %v (first started %v)", tk, started)
		}
		c.ok("tasks.ping", map[string]any{"task": id})
		c.at("2.5").ok("tasks.completed", map[string]any{"task": id, "status_reason": "worker execution done"})
		tk = c.task(id)
		if tk["status"] != "completed" || tk["completed"] == nil || tk["status_message"] != "" {
			t.Fatalf("after completed = %v", tk)
		}
		// A second completed is a same-state update; failed after completed is refused.
		c.ok("tasks.completed", map[string]any{"task": id})
		c.fail("tasks.failed", map[string]any{"task": id}, 400, 110)
		c.ok("tasks.failed", map[string]any{"task": id, "force": true})
	})
}

func TestStatusTransitions(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		tests := []struct {
			setup    []string // endpoints applied with force
			endpoint string
			ok       bool
		}{
			{nil, "tasks.started", true},
			{nil, "tasks.stopped", false},
			{nil, "tasks.failed", false},
			{nil, "tasks.completed", false},
			{[]string{"tasks.started"}, "tasks.failed", true},
			{[]string{"tasks.started"}, "tasks.stopped", true},
			{[]string{"tasks.started", "tasks.completed"}, "tasks.started", true},
			{[]string{"tasks.started", "tasks.completed"}, "tasks.stopped", false},
			{[]string{"tasks.started", "tasks.failed"}, "tasks.started", false},
			{[]string{"tasks.started", "tasks.stopped"}, "tasks.close", true},
			{[]string{"tasks.started", "tasks.stopped", "tasks.close"}, "tasks.started", false},
			{[]string{"tasks.publish"}, "tasks.started", false},
		}
		for i, tc := range tests {
			t.Run(fmt.Sprintf("%d_%s", i, tc.endpoint), func(t *testing.T) {
				id := c.createTask(fmt.Sprintf("transition %d", i))
				for _, e := range tc.setup {
					c.ok(e, map[string]any{"task": id, "force": true})
				}
				before := c.task(id)["status"]
				code, env := c.raw(tc.endpoint, map[string]any{"task": id, "status_reason": "r", "status_message": "m"})
				if (code == 200) != tc.ok {
					t.Fatalf("%v then %s: %d %s", tc.setup, tc.endpoint, code, env.Meta.ResultMsg)
				}
				if !tc.ok {
					if env.Meta.ResultSubcode != 110 {
						t.Fatalf("refusal subcode = %d, want 110", env.Meta.ResultSubcode)
					}
					if now := c.task(id)["status"]; now != before {
						t.Fatalf("refused change still moved status %v -> %v", before, now)
					}
					// force always works
					c.ok(tc.endpoint, map[string]any{"task": id, "force": true})
				} else if c.task(id)["status_message"] != "m" {
					t.Fatalf("status_message not written")
				}
			})
		}
	})
}

func TestStopProtocol(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		// A queued task is stopped at once and leaves its queue.
		queued := c.createTask("queued one")
		c.ok("tasks.enqueue", map[string]any{"task": queued, "queue": q})
		c.ok("tasks.stop", map[string]any{"task": queued})
		if tk := c.task(queued); tk["status"] != "stopped" || str(tk["status_message"]) != "Stopped by admin" {
			t.Fatalf("stopped queued task = %v", tk)
		}
		if n := c.ok("queues.get_num_entries", map[string]any{"queue": q})["num"]; n != 0.0 {
			t.Fatalf("queue still has %v entries", n)
		}
		// A task run by a live worker only gets status_message "stopping".
		running := c.createTask("running one")
		c.ok("tasks.started", map[string]any{"task": running, "force": true})
		c.ok("workers.status_report", map[string]any{"worker": "host:0", "timestamp": 1795803284000, "task": running, "machine_stats": nil, "tags": nil})
		c.ok("tasks.stop", map[string]any{"task": running})
		tk := c.task(running)
		if tk["status"] != "in_progress" || tk["status_message"] != "stopping" || tk["last_worker"] != "host:0" {
			t.Fatalf("stop of worker-run task = %v", tk)
		}
		// The agent then reports stopped itself (force=false).
		c.at("2.5").ok("tasks.stopped", map[string]any{"task": running, "status_reason": "task was stopped by tasks.stop", "force": false})
		polled := c.at("2.14").ok("tasks.get_all", map[string]any{"id": []string{running}, "only_fields": []string{"status", "status_message"}, "search_hidden": true})
		got := polled["tasks"].([]any)[0].(map[string]any)
		if len(got) != 3 || got["status"] != "stopped" || got["status_message"] != "" {
			t.Fatalf("projected poll = %v", got)
		}
		// A created task cannot be stopped without force.
		c.fail("tasks.stop", map[string]any{"task": c.createTask("idle one")}, 400, 110)
	})
}

func TestEnqueueDequeueReset(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		other := c.ok("queues.create", map[string]any{"name": "other queue"})["id"].(string)
		id := c.createTask("movable")
		c.ok("tasks.edit", map[string]any{"task": id, "system_tags": []string{"development"}})
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		if tags := c.task(id)["system_tags"].([]any); len(tags) != 0 {
			t.Fatalf("development tag kept: %v", tags)
		}
		// Enqueue elsewhere moves it.
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": other})
		for qid, want := range map[string]float64{q: 0, other: 1} {
			if n := c.ok("queues.get_num_entries", map[string]any{"queue": qid})["num"]; n != want {
				t.Fatalf("queue %s has %v entries, want %v", qid, n, want)
			}
		}
		// Dequeue without new_status goes back to the pre-enqueue status.
		resp := c.ok("tasks.dequeue", map[string]any{"task": id})
		if resp["dequeued"] != 1.0 || c.task(id)["status"] != "created" {
			t.Fatalf("dequeue = %v, status %v", resp, c.task(id)["status"])
		}
		if n := c.ok("queues.get_num_entries", map[string]any{"queue": other})["num"]; n != 0.0 {
			t.Fatalf("dequeued task still queued")
		}
		// enqueue by queue_name creates the queue.
		resp = c.ok("tasks.enqueue", map[string]any{"task": id, "queue_name": "brand new"})
		newQ := resp["fields"].(map[string]any)["execution.queue"].(string)
		if got := c.ok("queues.get_by_id", map[string]any{"queue": newQ})["queue"].(map[string]any); got["name"] != "brand new" {
			t.Fatalf("auto-created queue = %v", got)
		}
		c.fail("tasks.enqueue", map[string]any{"task": id, "queue": q, "queue_name": "x y z"}, 400, 12)
		// Events, runtime and queue membership go on reset; the script stays.
		c.ok("tasks.started", map[string]any{"task": id, "force": true})
		c.ok("tasks.edit", map[string]any{"task": id, "force": true, "runtime": map[string]any{"progress": "50"}})
		c.ok("events.add_batch", `{"task":"`+id+`","type":"log","msg":"hello","level":"info"}`)
		c.ok("tasks.reset", map[string]any{"task": id, "force": true})
		tk := c.task(id)
		if rt, ok := tk["runtime"].(map[string]any); tk["status"] != "created" || !ok || len(rt) != 0 || tk["started"] != nil || tk["script"] == nil {
			t.Fatalf("after reset = %v", tk)
		}
		if log := c.ok("events.get_task_log", map[string]any{"task": id}); log["total"] != 0.0 {
			t.Fatalf("events survived reset: %v", log)
		}
	})
}

func TestEditMergeRulesAndLegacyViews(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := c.createTask("editable")
		c.ok("tasks.edit", map[string]any{"task": id, "script": map[string]any{"version_num": "abc123"},
			"container":   map[string]any{"image": "python:3.11", "arguments": "--ipc=host"},
			"hyperparams": map[string]any{"Args": map[string]any{"lr": map[string]any{"value": "0.1"}}}})
		tk := c.task(id)
		script := tk["script"].(map[string]any)
		if script["version_num"] != "abc123" || script["entry_point"] != "train.py" {
			t.Fatalf("script not shallow-merged: %v", script)
		}
		lr := tk["hyperparams"].(map[string]any)["Args"].(map[string]any)["lr"].(map[string]any)
		if lr["section"] != "Args" || lr["name"] != "lr" || lr["value"] != "0.1" {
			t.Fatalf("hyperparam = %v", lr)
		}
		old := c.at("2.5").ok("tasks.get_by_id", map[string]any{"task": id})["task"].(map[string]any)
		if got := old["execution"].(map[string]any)["docker_cmd"]; got != "python:3.11 --ipc=host" {
			t.Fatalf("v2.5 docker_cmd = %v", got)
		}
		if exec, _ := c.task(id)["execution"].(map[string]any); exec["docker_cmd"] != nil {
			t.Fatalf("docker_cmd shown at a new version")
		}
		c.at("2.5").ok("tasks.edit", map[string]any{"task": id, "execution": map[string]any{"docker_cmd": "ubuntu:22.04 -e A=1"}})
		if cont := c.task(id)["container"].(map[string]any); cont["image"] != "ubuntu:22.04" || cont["arguments"] != "-e A=1" {
			t.Fatalf("legacy docker_cmd edit = %v", cont)
		}
		params := c.ok("tasks.get_hyper_params", map[string]any{"tasks": []string{id}})["params"].([]any)
		if len(params) != 1 || len(params[0].(map[string]any)["hyperparams"].([]any)) != 1 {
			t.Fatalf("get_hyper_params = %v", params)
		}
		// Without force only created tasks can be edited.
		c.ok("tasks.started", map[string]any{"task": id, "force": true})
		c.fail("tasks.edit", map[string]any{"task": id, "comment": "x"}, 400, 110)
		c.ok("tasks.set_requirements", map[string]any{"task": id, "requirements": map[string]any{"pip": "numpy==1.26"}})
		req := c.task(id)["script"].(map[string]any)["requirements"].(map[string]any)
		if req["pip"] != "numpy==1.26" {
			t.Fatalf("requirements = %v", req)
		}
		clone := c.ok("tasks.clone", map[string]any{"task": id, "new_task_name": "Clone of editable"})["id"].(string)
		ct := c.task(clone)
		if ct["status"] != "created" || ct["parent"] != id || ct["name"] != "Clone of editable" || ct["script"].(map[string]any)["version_num"] != "abc123" {
			t.Fatalf("clone = %v", ct)
		}
	})
}

func TestGetAllFiltersPagingProjection(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		proj := c.ok("projects.create", map[string]any{"name": "team/vision"})["id"].(string)
		var ids []string
		for i := range 7 {
			id := c.ok("tasks.create", map[string]any{"name": fmt.Sprintf("task-%02d", i), "type": "training", "project": proj,
				"tags": []string{fmt.Sprintf("t%d", i%2)}})["id"].(string)
			ids = append(ids, id)
		}
		c.ok("tasks.edit", map[string]any{"task": ids[6], "system_tags": []string{"hidden"}})
		count := func(body map[string]any) int {
			return len(c.ok("tasks.get_all", body)["tasks"].([]any))
		}
		cases := []struct {
			body map[string]any
			want int
		}{
			{map[string]any{"project": []string{proj}}, 6},
			{map[string]any{"project": []string{proj}, "search_hidden": true}, 7},
			{map[string]any{"id": ids}, 7},
			{map[string]any{"name": "^task-0[0-2]$"}, 3},
			{map[string]any{"tags": []string{"t1"}}, 3},
			{map[string]any{"tags": []string{"-t1"}, "project": proj}, 3},
			{map[string]any{"status": []string{"created"}, "project": []string{proj}}, 6},
			{map[string]any{"status": []string{"-created"}}, 0},
			{map[string]any{"project": proj, "page": 1, "page_size": 4}, 2},
			{map[string]any{"system_tags": []string{"hidden"}, "search_hidden": true}, 1},
		}
		for _, tc := range cases {
			if got := count(tc.body); got != tc.want {
				t.Errorf("get_all %v = %d tasks, want %d", tc.body, got, tc.want)
			}
		}
		res := c.ok("tasks.get_all", map[string]any{"project": proj, "order_by": []string{"-name"}, "only_fields": []string{"name", "script.entry_point"}})
		tasks := res["tasks"].([]any)
		first := tasks[0].(map[string]any)
		// A task made without a script has the reference's default one.
		if first["name"] != "task-05" || len(first) != 3 || fmt.Sprint(first["script"]) != "map[entry_point:]" {
			t.Fatalf("ordered projection first = %v", first)
		}
		names := []string{}
		for _, tk := range tasks {
			names = append(names, tk.(map[string]any)["name"].(string))
		}
		if !slices.IsSortedFunc(names, func(a, b string) int { return -compare(a, b) }) {
			t.Fatalf("not sorted descending: %v", names)
		}
		c.fail("tasks.get_all", map[string]any{"name": "("}, 400, 21)
		c.fail("tasks.get_all", map[string]any{"tags": []string{"__$bogus"}}, 400, 16)
	})
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
