package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// TestAnswersConformToReferenceSchema calls every endpoint the server serves
// on fresh objects, at the SDK's API version and at the newest one, and
// checks each answer against the reference server's schema (testdata/schema):
// every field it always sends is there, with its type, and a fresh object
// carries the reference's defaults. It runs on SQLite and PostgreSQL.
func TestAnswersConformToReferenceSchema(t *testing.T) {
	t.Parallel()
	loadSchema(t)
	unchecked, _ := mapAt(schemaExtra["exceptions"], "unchecked")
	for _, e := range server.Endpoints() {
		_, hasCase := conformanceCases[e]
		_, skipped := unchecked[e]
		if !hasCase && !skipped {
			t.Errorf("endpoint %s has no conformance case (add one, or list it under unchecked with the reason)", e)
		}
		if hasCase {
			if _, _, ok := responseSchema(t, e, api.MaxVersion); !ok {
				t.Errorf("endpoint %s: the schema copy in %s does not declare it", e, schemaDir)
			}
		}
	}
	forEachBackend(t, func(t *testing.T, c *client) {
		for _, version := range []string{"2.23", api.MaxVersion} {
			for _, e := range sortedKeys(conformanceCases) {
				t.Run(version+"/"+e, func(t *testing.T) {
					vc := c.at(version)
					vc.t = t
					data, fresh := conformanceCases[e](vc)
					resp, defs, _ := responseSchema(t, e, version)
					chk := &conformance{endpoint: e, label: "/v" + version + "/" + e, defs: defs, fresh: fresh}
					chk.checkAnswer(data, resp)
					if len(chk.errs) > 0 {
						t.Errorf("the answer differs from the reference's:\n%s", strings.Join(chk.errs, "\n"))
					}
				})
			}
		}
	})
}

// conformanceCase makes what the endpoint needs, calls it and returns the
// answer's data; fresh is true when the answer shows objects just created.
type conformanceCase func(c *client) (data []byte, fresh bool)

// call calls endpoint and returns its data, failing the test on an error.
func (c *client) call(endpoint string, body any) []byte {
	c.t.Helper()
	code, env := c.raw(endpoint, body)
	if code != 200 {
		c.t.Fatalf("%s: %d/%d %s", endpoint, code, env.Meta.ResultSubcode, env.Meta.ResultMsg)
	}
	return env.Data
}

func answer(endpoint string, body any) conformanceCase {
	return func(c *client) ([]byte, bool) { return c.call(endpoint, body), false }
}

// on creates what setup makes and calls endpoint with the body it returns.
func on(endpoint string, fresh bool, setup func(c *client) any) conformanceCase {
	return func(c *client) ([]byte, bool) { return c.call(endpoint, setup(c)), fresh }
}

func uniq(c *client, prefix string) string {
	c.t.Helper()
	return fmt.Sprintf("%s %s", prefix, strings.ReplaceAll(c.t.Name(), "/", " ")) + " " + fmt.Sprint(nextSeq())
}

var seq = make(chan int, 1)

func init() { seq <- 0 }

func nextSeq() int {
	n := <-seq
	seq <- n + 1
	return n
}

// freshTask creates a task with only the required fields, as the SDK does.
func freshTask(c *client) string {
	return str(c.ok("tasks.create", map[string]any{"name": uniq(c, "task"), "type": "training"})["id"])
}

// taskIn creates a task and moves it to status via the agent's calls.
func taskIn(c *client, status string) string {
	id := freshTask(c)
	switch status {
	case api.StatusCreated:
	case api.StatusQueued:
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": c.defaultQueue()})
	default:
		c.ok("tasks.started", map[string]any{"task": id})
		if status != api.StatusInProgress {
			c.ok("tasks."+map[string]string{api.StatusCompleted: "completed", api.StatusStopped: "stopped", api.StatusFailed: "failed"}[status],
				map[string]any{"task": id, "force": true})
		}
	}
	return id
}

func freshModel(c *client, task string) string {
	body := map[string]any{"uri": "http://files/model.bin", "name": uniq(c, "model")}
	if task != "" {
		body["task"] = task
	}
	return str(c.ok("models.create", body)["id"])
}

func freshQueue(c *client) string {
	return str(c.ok("queues.create", map[string]any{"name": uniq(c, "queue")})["id"])
}

// queueOfTwo makes a queue holding two tasks and returns it and the second.
func queueOfTwo(c *client) (queue, second string) {
	queue = freshQueue(c)
	for range 2 {
		second = freshTask(c)
		c.ok("tasks.enqueue", map[string]any{"task": second, "queue": queue})
	}
	return queue, second
}

func freshProject(c *client) string {
	return str(c.ok("projects.create", map[string]any{"name": uniq(c, "project")})["id"])
}

// withArtifact gives a task an output artifact and a parameter and a
// configuration item.
func taskWithData(c *client) string {
	id := freshTask(c)
	c.ok("tasks.add_or_update_artifacts", map[string]any{"task": id, "artifacts": []any{
		map[string]any{"key": "a", "type": "custom", "mode": "output", "uri": "http://files/a", "timestamp": 1717000000}}})
	c.ok("tasks.edit_hyper_params", map[string]any{"task": id, "hyperparams": []any{
		map[string]any{"section": "Args", "name": "lr", "value": "0.1", "type": "float"}}})
	c.ok("tasks.edit_configuration", map[string]any{"task": id, "configuration": []any{
		map[string]any{"name": "General", "value": "a: 1", "type": "hocon"}}})
	return id
}

func scalarEvents(c *client, task string) {
	var lines []string
	for it := range 3 {
		ev, _ := json.Marshal(map[string]any{"type": "training_stats_scalar", "task": task, "iter": it, "metric": "loss",
			"variant": "total", "value": 1.0 / float64(it+1), "timestamp": 1717000000000 + it})
		lines = append(lines, string(ev))
	}
	ev, _ := json.Marshal(map[string]any{"type": "training_stats_scalar", "task": task, "iter": -2147483648, "metric": "Summary",
		"variant": "accuracy", "value": 0.9, "timestamp": 1717000000100})
	lines = append(lines, string(ev))
	c.ok("events.add_batch", strings.Join(lines, "\n"))
}

// login gets a second token with the client's credentials.
func (c *client) login2() []byte {
	c.t.Helper()
	path := "/auth.login"
	if c.version != "" {
		path = "/v" + c.version + path
	}
	req, _ := http.NewRequest("GET", c.ts.URL+path, nil)
	req.SetBasicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
	code, env := do(c.t, req)
	if code != 200 {
		c.t.Fatalf("auth.login: %d %s", code, env.Meta.ResultMsg)
	}
	return env.Data
}

var conformanceCases = map[string]conformanceCase{
	"auth.login": func(c *client) ([]byte, bool) { return c.login2(), false },
	"auth.logout": func(c *client) ([]byte, bool) {
		var tok api.LoginResponse
		json.Unmarshal(c.login2(), &tok)
		other := *c
		other.token = tok.Token
		return other.call("auth.logout", nil), false
	},
	"auth.create_user":        on("auth.create_user", false, func(c *client) any { return map[string]any{"name": uniq(c, "user")} }),
	"auth.create_credentials": answer("auth.create_credentials", nil),
	"server.info":             answer("server.info", nil),

	"projects.create":    on("projects.create", false, func(c *client) any { return map[string]any{"name": uniq(c, "project")} }),
	"projects.get_by_id": on("projects.get_by_id", true, func(c *client) any { return map[string]any{"project": freshProject(c)} }),
	"projects.get_all":   on("projects.get_all", true, func(c *client) any { return map[string]any{"id": []string{freshProject(c)}} }),
	"projects.update": on("projects.update", false, func(c *client) any {
		return map[string]any{"project": freshProject(c), "description": "changed"}
	}),

	"queues.create":      on("queues.create", false, func(c *client) any { return map[string]any{"name": uniq(c, "queue")} }),
	"queues.get_by_id":   on("queues.get_by_id", true, func(c *client) any { return map[string]any{"queue": freshQueue(c)} }),
	"queues.get_all":     on("queues.get_all", true, func(c *client) any { return map[string]any{"id": []string{freshQueue(c)}} }),
	"queues.get_default": answer("queues.get_default", nil),
	"queues.update": on("queues.update", false, func(c *client) any {
		return map[string]any{"queue": freshQueue(c), "tags": []string{"x"}}
	}),
	"queues.delete": on("queues.delete", false, func(c *client) any { return map[string]any{"queue": freshQueue(c)} }),
	"queues.add_task": on("queues.add_task", false, func(c *client) any {
		return map[string]any{"queue": freshQueue(c), "task": freshTask(c)}
	}),
	"queues.remove_task": on("queues.remove_task", false, func(c *client) any {
		q, id := freshQueue(c), freshTask(c)
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		return map[string]any{"queue": q, "task": id}
	}),
	"queues.get_next_task": on("queues.get_next_task", false, func(c *client) any {
		q, id := freshQueue(c), freshTask(c)
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		return map[string]any{"queue": q, "get_task_info": true}
	}),
	"queues.peek_task": on("queues.peek_task", false, func(c *client) any {
		q, id := freshQueue(c), freshTask(c)
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		return map[string]any{"queue": q}
	}),
	"queues.get_num_entries": on("queues.get_num_entries", false, func(c *client) any { return map[string]any{"queue": freshQueue(c)} }),
	"queues.move_task_forward": on("queues.move_task_forward", false, func(c *client) any {
		q, task := queueOfTwo(c)
		return map[string]any{"queue": q, "task": task}
	}),
	"queues.move_task_backward": on("queues.move_task_backward", false, func(c *client) any {
		q, task := queueOfTwo(c)
		return map[string]any{"queue": q, "task": task}
	}),
	"queues.move_task_to_front": on("queues.move_task_to_front", false, func(c *client) any {
		q, task := queueOfTwo(c)
		return map[string]any{"queue": q, "task": task}
	}),
	"queues.move_task_to_back": on("queues.move_task_to_back", false, func(c *client) any {
		q, task := queueOfTwo(c)
		return map[string]any{"queue": q, "task": task}
	}),

	"tasks.create":    answer("tasks.create", map[string]any{"name": "conformance task", "type": "training"}),
	"tasks.get_by_id": on("tasks.get_by_id", true, func(c *client) any { return map[string]any{"task": freshTask(c)} }),
	"tasks.get_all":   on("tasks.get_all", true, func(c *client) any { return map[string]any{"id": []string{freshTask(c)}} }),
	"tasks.edit":      on("tasks.edit", false, func(c *client) any { return map[string]any{"task": freshTask(c), "comment": "edited"} }),
	"tasks.update":    on("tasks.update", false, func(c *client) any { return map[string]any{"task": freshTask(c), "comment": "updated"} }),
	"tasks.started":   on("tasks.started", false, func(c *client) any { return map[string]any{"task": freshTask(c)} }),
	"tasks.stopped": on("tasks.stopped", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusInProgress)}
	}),
	"tasks.failed": on("tasks.failed", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusInProgress)}
	}),
	"tasks.completed": on("tasks.completed", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusInProgress)}
	}),
	"tasks.close": on("tasks.close", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusStopped)}
	}),
	"tasks.publish": on("tasks.publish", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusCompleted)}
	}),
	"tasks.stop": on("tasks.stop", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusInProgress)}
	}),
	"tasks.enqueue": on("tasks.enqueue", false, func(c *client) any { return map[string]any{"task": freshTask(c)} }),
	"tasks.dequeue": on("tasks.dequeue", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusQueued)}
	}),
	"tasks.reset": on("tasks.reset", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusCompleted), "force": true}
	}),
	"tasks.ping": on("tasks.ping", false, func(c *client) any {
		return map[string]any{"task": taskIn(c, api.StatusInProgress)}
	}),
	"tasks.set_requirements": on("tasks.set_requirements", false, func(c *client) any {
		return map[string]any{"task": freshTask(c), "requirements": map[string]any{"pip": "six\n"}}
	}),
	"tasks.clone":  on("tasks.clone", false, func(c *client) any { return map[string]any{"task": taskWithData(c)} }),
	"tasks.delete": on("tasks.delete", false, func(c *client) any { return map[string]any{"task": freshTask(c)} }),
	"tasks.archive": on("tasks.archive", false, func(c *client) any {
		return map[string]any{"tasks": []string{freshTask(c)}}
	}),
	"tasks.get_hyper_params": on("tasks.get_hyper_params", false, func(c *client) any {
		return map[string]any{"tasks": []string{taskWithData(c)}}
	}),
	"tasks.edit_hyper_params": on("tasks.edit_hyper_params", false, func(c *client) any {
		return map[string]any{"task": freshTask(c), "hyperparams": []any{map[string]any{"section": "Args", "name": "x", "value": "1"}}}
	}),
	"tasks.delete_hyper_params": on("tasks.delete_hyper_params", false, func(c *client) any {
		return map[string]any{"task": taskWithData(c), "hyperparams": []any{map[string]any{"section": "Args", "name": "lr"}}}
	}),
	"tasks.get_configurations": on("tasks.get_configurations", false, func(c *client) any {
		return map[string]any{"tasks": []string{taskWithData(c)}}
	}),
	"tasks.get_configuration_names": on("tasks.get_configuration_names", false, func(c *client) any {
		return map[string]any{"tasks": []string{taskWithData(c)}}
	}),
	"tasks.edit_configuration": on("tasks.edit_configuration", false, func(c *client) any {
		return map[string]any{"task": freshTask(c), "configuration": []any{map[string]any{"name": "cfg", "value": "{}"}}}
	}),
	"tasks.delete_configuration": on("tasks.delete_configuration", false, func(c *client) any {
		return map[string]any{"task": taskWithData(c), "configuration": []string{"General"}}
	}),
	"tasks.add_or_update_artifacts": on("tasks.add_or_update_artifacts", false, func(c *client) any {
		return map[string]any{"task": freshTask(c), "artifacts": []any{map[string]any{"key": "b", "type": "custom"}}}
	}),
	"tasks.delete_artifacts": on("tasks.delete_artifacts", false, func(c *client) any {
		return map[string]any{"task": taskWithData(c), "artifacts": []any{map[string]any{"key": "a"}}}
	}),
	"tasks.add_or_update_model": on("tasks.add_or_update_model", false, func(c *client) any {
		id := freshTask(c)
		return map[string]any{"task": id, "name": "m", "model": freshModel(c, id), "type": "output"}
	}),
	"tasks.delete_models": on("tasks.delete_models", false, func(c *client) any {
		id := freshTask(c)
		c.ok("tasks.add_or_update_model", map[string]any{"task": id, "name": "m", "model": freshModel(c, id), "type": "output"})
		return map[string]any{"task": id, "models": []any{map[string]any{"name": "m", "type": "output"}}}
	}),
}

func init() {
	for e, fn := range map[string]conformanceCase{
		"models.create":    answer("models.create", map[string]any{"uri": "http://files/m.bin", "name": "conformance model"}),
		"models.get_by_id": on("models.get_by_id", true, func(c *client) any { return map[string]any{"model": freshModel(c, "")} }),
		"models.get_all":   on("models.get_all", true, func(c *client) any { return map[string]any{"id": []string{freshModel(c, "")}} }),
		"models.edit": on("models.edit", false, func(c *client) any {
			return map[string]any{"model": freshModel(c, ""), "comment": "edited"}
		}),
		"models.update": on("models.update", false, func(c *client) any {
			return map[string]any{"model": freshModel(c, ""), "comment": "updated"}
		}),
		"models.update_for_task": on("models.update_for_task", false, func(c *client) any {
			return map[string]any{"task": taskIn(c, api.StatusInProgress), "uri": "http://files/out.bin", "name": uniq(c, "model")}
		}),
		"models.set_ready": on("models.set_ready", false, func(c *client) any {
			return map[string]any{"model": freshModel(c, taskIn(c, api.StatusCompleted))}
		}),
		"models.publish_many": on("models.publish_many", false, func(c *client) any {
			return map[string]any{"ids": []string{freshModel(c, taskIn(c, api.StatusCompleted)), freshModel(c, "")}}
		}),
		"models.delete": on("models.delete", false, func(c *client) any { return map[string]any{"model": freshModel(c, "")} }),
		"models.delete_many": on("models.delete_many", false, func(c *client) any {
			return map[string]any{"ids": []string{freshModel(c, "")}}
		}),
		"models.add_or_update_metadata": on("models.add_or_update_metadata", false, func(c *client) any {
			return map[string]any{"model": freshModel(c, ""), "metadata": []any{map[string]any{"key": "k", "type": "str", "value": "v"}}}
		}),
		"models.delete_metadata": on("models.delete_metadata", false, func(c *client) any {
			m := freshModel(c, "")
			c.ok("models.add_or_update_metadata", map[string]any{"model": m, "metadata": []any{map[string]any{"key": "k", "value": "v"}}})
			return map[string]any{"model": m, "keys": []string{"k"}}
		}),

		"workers.register": on("workers.register", false, func(c *client) any {
			return map[string]any{"worker": uniq(c, "worker"), "queues": []string{c.defaultQueue()}}
		}),
		"workers.status_report": on("workers.status_report", false, func(c *client) any {
			w := uniq(c, "worker")
			c.ok("workers.register", map[string]any{"worker": w})
			return map[string]any{"worker": w, "timestamp": 1717000000, "task": taskIn(c, api.StatusInProgress)}
		}),
		"workers.unregister": on("workers.unregister", false, func(c *client) any {
			w := uniq(c, "worker")
			c.ok("workers.register", map[string]any{"worker": w})
			return map[string]any{"worker": w}
		}),
		"workers.get_all": on("workers.get_all", false, func(c *client) any {
			w := uniq(c, "worker")
			c.ok("workers.register", map[string]any{"worker": w, "queues": []string{c.defaultQueue()}})
			c.ok("workers.status_report", map[string]any{"worker": w, "timestamp": 1717000000, "task": taskIn(c, api.StatusInProgress)})
			return nil
		}),

		"workers.get_stats": on("workers.get_stats", false, func(c *client) any {
			w := uniq(c, "worker")
			c.ok("workers.register", map[string]any{"worker": w})
			now := time.Now().Unix()
			c.ok("workers.status_report", map[string]any{"worker": w, "timestamp": now, "machine_stats": map[string]any{"cpu_usage": []float64{10, 30}, "memory_used": 1000}})
			return map[string]any{"worker_ids": []string{w}, "from_date": now - 60, "to_date": now + 60, "interval": 10,
				"items": []any{map[string]any{"key": "cpu_usage", "category": "avg"}, map[string]any{"key": "memory_used", "category": "max"}}}
		}),

		"events.add": on("events.add", false, func(c *client) any {
			return map[string]any{"type": "log", "task": freshTask(c), "msg": "line", "level": "info"}
		}),
		"events.add_batch": func(c *client) ([]byte, bool) {
			id := freshTask(c)
			return c.call("events.add_batch", fmt.Sprintf(`{"type": "log", "task": %q, "msg": "a"}`+"\n"+`{"type": "log", "task": %q, "msg": "b"}`, id, id)), false
		},
		"events.get_task_log": on("events.get_task_log", false, func(c *client) any {
			id := freshTask(c)
			c.ok("events.add_batch", fmt.Sprintf(`{"type": "log", "task": %q, "msg": "a", "timestamp": 1717000000000}`, id))
			return map[string]any{"task": id, "batch_size": 10}
		}),
		"events.get_task_events": on("events.get_task_events", false, func(c *client) any {
			id := freshTask(c)
			scalarEvents(c, id)
			return map[string]any{"task": id, "batch_size": 2}
		}),
		"events.scalar_metrics_iter_histogram": on("events.scalar_metrics_iter_histogram", false, func(c *client) any {
			id := freshTask(c)
			scalarEvents(c, id)
			return map[string]any{"task": id, "key": "iter"}
		}),
		"events.get_scalar_metrics_and_variants": on("events.get_scalar_metrics_and_variants", false, func(c *client) any {
			id := freshTask(c)
			scalarEvents(c, id)
			return map[string]any{"task": id}
		}),
		"events.get_task_single_value_metrics": on("events.get_task_single_value_metrics", false, func(c *client) any {
			id := freshTask(c)
			scalarEvents(c, id)
			return map[string]any{"tasks": []string{id}}
		}),
		"events.delete_for_task": on("events.delete_for_task", false, func(c *client) any {
			id := freshTask(c)
			scalarEvents(c, id)
			return map[string]any{"task": id}
		}),
		"events.get_task_plots": on("events.get_task_plots", false, func(c *client) any {
			id := freshTask(c)
			c.ok("events.add_batch", fmt.Sprintf(`{"type": "plot", "task": %q, "iter": 0, "metric": "m", "variant": "v", "plot_str": "{}"}`, id))
			return map[string]any{"task": id, "iters": 1}
		}),
		"events.debug_images": on("events.debug_images", false, func(c *client) any {
			id := freshTask(c)
			c.ok("events.add_batch", fmt.Sprintf(`{"type": "training_debug_image", "task": %q, "iter": 0, "metric": "m", "variant": "v", "url": "http://files/i.png"}`, id))
			return map[string]any{"metrics": []any{map[string]any{"task": id, "metric": "m"}}, "iters": 1}
		}),
	} {
		conformanceCases[e] = fn
	}
}
