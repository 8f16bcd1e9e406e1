package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// TestPublishRules: as the reference, tasks.publish validates the move to
// published (from completed, failed, stopped, closed), then sets publishing
// itself; models.set_ready and publish_many publish the model's task the
// same way (Task.publish(), Dataset.publish(), OutputModel.publish()).
func TestPublishRules(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		for _, from := range []string{api.StatusCompleted, api.StatusFailed, api.StatusStopped} {
			id := taskIn(c, from)
			got := c.ok("tasks.publish", map[string]any{"task": id})
			fields := got["fields"].(map[string]any)
			if got["updated"] != 1.0 || fields["status"] != api.StatusPublished || fields["published"] == nil {
				t.Fatalf("tasks.publish of a %s task = %v", from, got)
			}
			if task := c.task(id); task["status"] != api.StatusPublished || task["published"] == nil {
				t.Fatalf("%s task after tasks.publish: status %v, published %v", from, task["status"], task["published"])
			}
		}
		for _, from := range []string{api.StatusCreated, api.StatusQueued, api.StatusInProgress} {
			id := taskIn(c, from)
			meta := c.fail("tasks.publish", map[string]any{"task": id}, 400, 110)
			if !strings.Contains(meta.ResultMsg, "new_status=published") {
				t.Fatalf("publishing a %s task: %s, want the move to published refused", from, meta.ResultMsg)
			}
			if st := c.task(id)["status"]; st != from {
				t.Fatalf("a refused publish changed the task from %s to %v", from, st)
			}
			// force publishes anyway, as the reference.
			c.ok("tasks.publish", map[string]any{"task": id, "force": true})
			if st := c.task(id)["status"]; st != api.StatusPublished {
				t.Fatalf("forced publish of a %s task: %v", from, st)
			}
		}

		// OutputModel.publish() of a completed task's model with
		// publish_task: the model is ready and the task published.
		done := taskIn(c, api.StatusCompleted)
		m := freshModel(c, done)
		got := c.ok("models.set_ready", map[string]any{"model": m, "publish_task": true})
		pt, _ := got["published_task"].(map[string]any)
		if got["updated"] != 1.0 || pt["id"] != done || pt["data"].(map[string]any)["updated"] != 1.0 {
			t.Fatalf("models.set_ready = %v", got)
		}
		if st := c.task(done)["status"]; st != api.StatusPublished {
			t.Fatalf("the model's task after set_ready: %v", st)
		}
		// A model whose task cannot be published: the failure names the task.
		running := taskIn(c, api.StatusInProgress)
		c.fail("models.set_ready", map[string]any{"model": freshModel(c, running)}, 400, 110)

		failed := taskIn(c, api.StatusFailed)
		m1, m2 := freshModel(c, failed), freshModel(c, "")
		res := c.ok("models.publish_many", map[string]any{"ids": []string{m1, m2}})
		succeeded := res["succeeded"].([]any)
		if len(succeeded) != 2 || len(res["failed"].([]any)) != 0 {
			t.Fatalf("publish_many = %v", res)
		}
		for _, s := range succeeded {
			s := s.(map[string]any)
			_, hasTask := s["published_task"]
			if s["updated"] != true || hasTask != (s["id"] == m1) {
				t.Fatalf("publish_many item %v", s)
			}
		}
		if st := c.task(failed)["status"]; st != api.StatusPublished {
			t.Fatalf("publish_many left the failed task %v", st)
		}
	})
}

// TestProjectNameLength: the reference's three-character minimum applies to
// the full name, so "team/cv" is valid; every project made on the way must
// meet it too.
func TestProjectNameLength(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := str(c.ok("projects.create", map[string]any{"name": "team/cv"})["id"])
		p := c.ok("projects.get_by_id", map[string]any{"project": id})["project"].(map[string]any)
		if p["name"] != "team/cv" || p["basename"] != "cv" {
			t.Fatalf("project team/cv = %v", p)
		}
		// Task.init(project_name="team/cv") reuses it; clone into a new one.
		task := c.createTask("in a short project")
		got := c.ok("tasks.clone", map[string]any{"task": task, "new_project_name": "team/nn"})
		if np, _ := got["new_project"].(map[string]any); np["name"] != "team/nn" {
			t.Fatalf("clone to team/nn = %v", got)
		}
		for _, bad := range []string{"ab", " a / b ", "ab/cd"} {
			c.fail("projects.create", map[string]any{"name": bad}, 400, 12)
		}
	})
}

// TestTasksIncludeSubprojects: tasks.get_all with include_subprojects finds
// the tasks of the project and of all its descendants.
func TestTasksIncludeSubprojects(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		ids := map[string]string{}
		for _, name := range []string{"root proj", "root proj/child", "root proj/child/leaf", "root project other"} {
			ids[name] = str(c.ok("projects.create", map[string]any{"name": name})["id"])
			c.ok("tasks.create", map[string]any{"name": "task in " + name, "type": "training", "project": ids[name]})
		}
		names := func(body map[string]any) []string {
			var out []string
			for _, tk := range c.ok("tasks.get_all", body)["tasks"].([]any) {
				out = append(out, tk.(map[string]any)["name"].(string))
			}
			slices.Sort(out)
			return out
		}
		root := ids["root proj"]
		if got := names(map[string]any{"project": []string{root}}); len(got) != 1 {
			t.Fatalf("without include_subprojects: %v", got)
		}
		got := names(map[string]any{"project": []string{root}, "include_subprojects": true, "only_fields": []string{"name"}})
		want := []string{"task in root proj", "task in root proj/child", "task in root proj/child/leaf"}
		if !slices.Equal(got, want) {
			t.Fatalf("include_subprojects: %v, want %v", got, want)
		}
		got = names(map[string]any{"project": []string{ids["root proj/child"]}, "include_subprojects": true, "status": []string{"created"}})
		if len(got) != 2 {
			t.Fatalf("include_subprojects of the child: %v", got)
		}
	})
}

// TestSingleValueMetrics: Logger.report_single_value sends a scalar at the
// reserved iteration -2^31; Task.get_reported_single_values reads the last
// value of each with events.get_task_single_value_metrics.
func TestSingleValueMetrics(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		id := freshTask(c)
		var lines []string
		add := func(metric, variant string, iter int, value float64, ts int) {
			ev, _ := json.Marshal(map[string]any{"type": "training_stats_scalar", "task": id, "iter": iter, "metric": metric,
				"variant": variant, "value": value, "timestamp": ts})
			lines = append(lines, string(ev))
		}
		add("Summary", "accuracy", -2147483648, 0.5, 1000)
		add("Summary", "accuracy", -2147483648, 0.75, 2000) // reported again: replaces
		add("Summary", "f1", -2147483648, 0.6, 1500)
		add("loss", "total", 3, 0.1, 1200) // an ordinary scalar
		c.ok("events.add_batch", strings.Join(lines, "\n"))
		other := freshTask(c)

		res := c.ok("events.get_task_single_value_metrics", map[string]any{"tasks": []string{id, other}})
		tasks := res["tasks"].([]any)
		if len(tasks) != 1 {
			t.Fatalf("tasks = %v, want only the task with single values", tasks)
		}
		entry := tasks[0].(map[string]any)
		got := map[string]float64{}
		for _, v := range entry["values"].([]any) {
			v := v.(map[string]any)
			got[fmt.Sprint(v["metric"], "/", v["variant"])] = v["value"].(float64)
		}
		if entry["task"] != id || entry["task_name"] == "" || fmt.Sprint(got) != "map[Summary/accuracy:0.75 Summary/f1:0.6]" {
			t.Fatalf("single values = %v", entry)
		}
		filtered := c.ok("events.get_task_single_value_metrics", map[string]any{"tasks": []string{id},
			"metrics": []any{map[string]any{"metric": "Summary", "variants": []string{"f1"}}}})
		if vs := filtered["tasks"].([]any)[0].(map[string]any)["values"].([]any); len(vs) != 1 {
			t.Fatalf("filtered single values = %v", vs)
		}
		// The ordinary scalar histogram leaves single values out.
		hist := c.ok("events.scalar_metrics_iter_histogram", map[string]any{"task": id})
		if _, ok := hist["Summary"]; ok || hist["loss"] == nil {
			t.Fatalf("histogram = %v", hist)
		}
		c.fail("events.get_task_single_value_metrics", map[string]any{"tasks": []string{"0123456789abcdef0123456789abcdef"}}, 400, 101)
		c.fail("events.get_task_single_value_metrics", map[string]any{}, 400, 11)
	})
}
