package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestSDKOutputURIAndArtifacts: Task.init(output_uri=files_server), then
// upload_artifact of an object and of a file; another process then reads
// the task (Task.get_task) and gets both artifacts (Artifact.get).
func TestSDKOutputURIAndArtifacts(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		id, _ := c.sdkTaskInit("sdk files", "artifacts task", c.files)
		task := c.task(id)
		if dest := task["output"].(map[string]any)["destination"]; dest != c.files {
			t.Fatalf("output.destination = %v, want %s", dest, c.files)
		}
		// upload_artifact("stats", {"a": 1}): serialised, uploaded under
		// <project>/<task name>.<id>/artifacts/<name>/, then registered.
		object := []byte(`{"a": 1, "b": [1, 2, 3]}`)
		file := []byte(strings.Repeat("a,b,c\n1,2,3\n", 5000))
		folder := fmt.Sprintf("sdk files/artifacts task.%s/artifacts", id)
		objURL := c.upload(folder+"/stats/stats.json", object)
		fileURL := c.upload(folder+"/data file/data file.csv", file)
		sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
		c.task(id)
		c.ok("tasks.add_or_update_artifacts", map[string]any{"task": id, "force": true, "artifacts": []any{
			map[string]any{"key": "stats", "type": "JSON", "mode": "output", "uri": objURL, "hash": sum(object),
				"content_size": len(object), "timestamp": 1717000000, "type_data": map[string]any{"preview": "{'a': 1}", "content_type": "application/json"}},
			map[string]any{"key": "data file", "type": "custom", "mode": "output", "uri": fileURL, "hash": sum(file),
				"content_size": len(file), "timestamp": 1717000001, "type_data": map[string]any{"content_type": "text/csv"}},
		}})
		c.ok("tasks.completed", map[string]any{"task": id, "status_reason": "completed"})

		// Another process: its own login, Task.get_task, Artifact.get().
		cmd := exec.Command(os.Args[0], "-test.run=^TestSDKChildProcess$")
		cmd.Env = append(os.Environ(), "SDKFLOW_CHILD=1", "SDKFLOW_API="+c.ts.URL, "SDKFLOW_TASK="+id,
			"SDKFLOW_KEY="+c.ts.Creds.AccessKey, "SDKFLOW_SECRET="+c.ts.Creds.SecretKey)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		var got map[string]string
		line := out[strings.LastIndex(string(out), "ARTIFACTS ")+len("ARTIFACTS "):]
		if err := json.Unmarshal(line[:strings.IndexByte(string(line), '\n')], &got); err != nil {
			t.Fatalf("child output: %v\n%s", err, out)
		}
		if want := map[string]string{"stats": sum(object), "data file": sum(file)}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("artifacts read by the other process: %v, want %v", got, want)
		}
	})
}

// TestSDKChildProcess is the "other process" of the test above; it does
// nothing unless that test started it.
func TestSDKChildProcess(t *testing.T) {
	if os.Getenv("SDKFLOW_CHILD") != "1" {
		t.Skip("started by TestSDKOutputURIAndArtifacts only")
	}
	c := &client{t: t, ts: &testServer{URL: os.Getenv("SDKFLOW_API")}}
	c.ts.Creds.AccessKey, c.ts.Creds.SecretKey = os.Getenv("SDKFLOW_KEY"), os.Getenv("SDKFLOW_SECRET")
	c.login()
	fc := &filesClient{client: c}
	// Task.get_task(task_id=...) reads the task; task.artifacts comes from
	// execution.artifacts; Artifact.get() downloads the uri with the token
	// (StorageManager.get_local_copy) and checks the hash.
	task := c.task(os.Getenv("SDKFLOW_TASK"))
	arts, _ := task["execution"].(map[string]any)["artifacts"].([]any)
	got := map[string]string{}
	for _, a := range arts {
		a := a.(map[string]any)
		code, body := fc.fileRequest("GET", a["uri"].(string))
		if code != 200 {
			t.Fatalf("GET %s: %d %s", a["uri"], code, body)
		}
		s := sha256.Sum256(body)
		if hex.EncodeToString(s[:]) != a["hash"] {
			t.Fatalf("artifact %s: content does not match its hash", a["key"])
		}
		got[a["key"].(string)] = hex.EncodeToString(s[:])
	}
	b, _ := json.Marshal(got)
	fmt.Printf("ARTIFACTS %s\n", b)
}

// TestSDKOutputModelAndInputModel: OutputModel(task).update_weights(file)
// (synchronous upload), publish, then InputModel lookups by id and by
// project and name, and Task.set_input_model on a second task.
func TestSDKOutputModelAndInputModel(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		id, pid := c.sdkTaskInit("sdk models", "training run", c.files)
		// _get_force_base_model: models.create (an empty model), reload,
		// then update() = models.edit with the task's fields, reload.
		mid := c.ok("models.create", map[string]any{"uri": c.files + "/uploading_file.1717000000", "name": "Anonymous model",
			"labels": map[string]any{}, "project": pid, "task": id})["id"].(string)
		c.ok("models.get_by_id", map[string]any{"model": mid})
		c.ok("models.edit", map[string]any{"model": mid, "uri": c.files + "/uploading_file.1717000000", "name": "training run",
			"comment": "Created by task id: " + id, "labels": map[string]any{"cat": 1, "dog": 2},
			"design": map[string]any{"design": "layers: 3"}, "framework": "PyTorch", "task": id, "project": pid})
		c.ok("models.get_by_id", map[string]any{"model": mid})
		// update_for_task: the task's output model entry (API >= 2.13).
		c.at("2.23").ok("tasks.add_or_update_model", map[string]any{"task": id, "name": "training run", "model": mid, "type": "output"})
		// update_and_upload: upload the weights, then models.edit with the uri.
		weights := []byte(strings.Repeat("\x00weights\xff", 4096))
		wURL := c.upload(fmt.Sprintf("sdk models/training run.%s/models/model.pt", id), weights)
		c.ok("models.edit", map[string]any{"model": mid, "uri": wURL, "name": "training run", "framework": "PyTorch", "iteration": 7, "task": id})
		m := c.ok("models.get_by_id", map[string]any{"model": mid})["model"].(map[string]any)
		if m["uri"] != wURL || m["ready"] != false || m["task"] != id || m["labels"].(map[string]any)["dog"] != 2.0 {
			t.Fatalf("model after update_weights = %v", m)
		}
		task := c.task(id)
		if outs := task["models"].(map[string]any)["output"].([]any); len(outs) != 1 || outs[0].(map[string]any)["model"] != mid {
			t.Fatalf("task models.output = %v", task["models"])
		}
		if task["last_iteration"] != 7.0 {
			t.Fatalf("task last_iteration = %v, want 7 from the model edit", task["last_iteration"])
		}
		// Task.get_task(...).models["output"]: models.get_all by task.
		got := c.ok("models.get_all", map[string]any{"task": []string{id}, "order_by": []string{"created"}, "only_fields": []string{"id"}})["models"].([]any)
		if len(got) != 1 || got[0].(map[string]any)["id"] != mid || len(got[0].(map[string]any)) != 1 {
			t.Fatalf("models of the task = %v", got)
		}
		if code, body := c.fileRequest("GET", wURL); code != 200 || string(body) != string(weights) {
			t.Fatalf("weights download: %d, %d bytes", code, len(body))
		}
		// OutputModel.publish(): models.set_ready without publishing the task.
		c.ok("models.set_ready", map[string]any{"model": mid, "publish_task": false})
		c.fail("models.set_ready", map[string]any{"model": mid}, 400, 203)
		if st := c.task(id)["status"]; st != "in_progress" {
			t.Fatalf("publishing the model changed the task to %v", st)
		}
		// InputModel(model_id=...).
		if m := c.ok("models.get_by_id", map[string]any{"model": mid})["model"].(map[string]any); m["ready"] != true {
			t.Fatalf("model not ready after set_ready: %v", m)
		}
		// InputModel(project=..., name=...): Model.query_models.
		p := c.ok("projects.get_all", map[string]any{"name": "^sdk models$"})["projects"].([]any)[0].(map[string]any)["id"]
		found := c.ok("models.get_all", map[string]any{"project": []any{p}, "name": "^training run$", "only_fields": []string{"id", "created", "system_tags"},
			"system_tags": []string{"-archived"}, "order_by": []string{"-created"}, "page": 0, "page_size": 500})["models"].([]any)
		if len(found) != 1 || found[0].(map[string]any)["id"] != mid {
			t.Fatalf("query_models = %v", found)
		}
		// Task.set_input_model(model_name=...) on a new task.
		other, _ := c.sdkTaskInit("sdk models", "fine tune", "")
		ready := c.ok("models.get_all", map[string]any{"name": "^training run$", "ready": true, "page": 0, "page_size": 10,
			"order_by": []string{"-created"}, "only_fields": []string{"id", "created", "uri"}})["models"].([]any)
		if len(ready) != 1 {
			t.Fatalf("ready models named training run: %v", ready)
		}
		c.ok("models.get_by_id", map[string]any{"model": mid})
		c.at("2.23").ok("tasks.add_or_update_model", map[string]any{"task": other, "name": "model", "model": mid, "type": "input"})
		if in := c.task(other)["models"].(map[string]any)["input"].([]any); len(in) != 1 || in[0].(map[string]any)["model"] != mid {
			t.Fatalf("input models = %v", in)
		}
		if ex := c.at("2.5").task(other)["execution"].(map[string]any); ex["model"] != mid {
			t.Fatalf("/v2.5/ execution.model = %v, want the input model", ex["model"])
		}
		// A model another task uses needs force to go.
		c.fail("models.delete", map[string]any{"model": mid}, 400, 205)
		if none := c.ok("models.get_all", map[string]any{"ready": false})["models"].([]any); len(none) != 0 {
			t.Fatalf("unready models: %v", none)
		}
	})
}

// TestSDKDebugSamplesAndPlots: Logger.report_image (upload, then a
// training_debug_image event) and Task.get_debug_samples, whose scroll loop
// must end; Logger.report_plotly and Task.get_reported_plots.
func TestSDKDebugSamplesAndPlots(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		id, _ := c.sdkTaskInit("sdk media", "media task", "")
		images := map[string][]byte{}
		var batch []string
		for it := range 5 {
			png := []byte(fmt.Sprintf("\x89PNG image %d", it))
			path := fmt.Sprintf("sdk media/media task.%s/metrics/samples/rgb/samples_rgb_%08d.png", id, it)
			u := c.upload(path, png)
			images[u] = png
			ev, _ := json.Marshal(map[string]any{"timestamp": 1717000000000 + it, "type": "training_debug_image", "task": id, "iter": it,
				"metric": "samples", "variant": "rgb", "key": fmt.Sprintf("samples_rgb_%08d", it), "url": u, "model_event": false})
			batch = append(batch, string(ev))
			plot, _ := json.Marshal(map[string]any{"data": []any{map[string]any{"type": "scatter", "x": []int{0, it}, "y": []int{1, it * 2}}},
				"layout": map[string]any{"title": fmt.Sprintf("iteration %d", it)}})
			ev, _ = json.Marshal(map[string]any{"timestamp": 1717000000000 + it, "type": "plot", "task": id, "iter": it,
				"metric": "curves", "variant": "roc", "plot_str": string(plot)})
			batch = append(batch, string(ev))
		}
		ev, _ := json.Marshal(map[string]any{"timestamp": 1717000009000, "type": "plot", "task": id, "iter": 0,
			"metric": "tables", "variant": "summary", "plot_str": `{"data": [{"type": "table"}], "layout": {}}`})
		batch = append(batch, string(ev))
		if got := c.ok("events.add_batch", strings.Join(batch, "\n")); got["added"] != 11.0 {
			t.Fatalf("add_batch = %v", got)
		}
		// get_debug_samples(title, series, n_last_iterations): the SDK's loop.
		debugSamples := func(n int) []map[string]any {
			req := map[string]any{"metrics": []any{map[string]any{"task": id, "metric": "samples", "variants": []string{"rgb"}}}, "iters": n}
			resp := c.ok("events.debug_images", req)
			var samples []map[string]any
			for range 100 {
				for _, m := range resp["metrics"].([]any) {
					for _, it := range m.(map[string]any)["iterations"].([]any) {
						for _, e := range it.(map[string]any)["events"].([]any) {
							samples = append(samples, e.(map[string]any))
						}
					}
				}
				req["scroll_id"] = resp["scroll_id"]
				resp = c.ok("events.debug_images", req)
				empty := true
				for _, m := range resp["metrics"].([]any) {
					empty = empty && len(m.(map[string]any)["iterations"].([]any)) == 0
				}
				if len(samples) == n || empty {
					return samples
				}
			}
			t.Fatal("get_debug_samples: the scroll never ended")
			return nil
		}
		last3 := debugSamples(3)
		var iters []float64
		for _, s := range last3 {
			iters = append(iters, s["iter"].(float64))
		}
		if !slices.Equal(iters, []float64{4, 3, 2}) {
			t.Fatalf("last 3 debug samples are iterations %v, want 4 3 2", iters)
		}
		all := debugSamples(100)
		if len(all) != 5 {
			t.Fatalf("all debug samples: %d, want 5", len(all))
		}
		for _, s := range all {
			u := s["url"].(string)
			if code, body := c.fileRequest("GET", u); code != 200 || string(body) != string(images[u]) {
				t.Fatalf("GET %s: %d %q", u, code, body)
			}
		}
		// get_reported_plots(): the last iteration of every plot.
		plots := c.ok("events.get_task_plots", map[string]any{"task": id, "iters": 1, "no_scroll": true})["plots"].([]any)
		got := map[string]float64{}
		for _, p := range plots {
			p := p.(map[string]any)
			var fig map[string]any
			if err := json.Unmarshal([]byte(p["plot_str"].(string)), &fig); err != nil {
				t.Fatalf("plot_str: %v", err)
			}
			got[p["metric"].(string)+"/"+p["variant"].(string)] = p["iter"].(float64)
		}
		if fmt.Sprint(got) != "map[curves/roc:4 tables/summary:0]" {
			t.Fatalf("reported plots = %v", got)
		}
		if n := len(c.ok("events.get_task_plots", map[string]any{"task": id, "iters": 3})["plots"].([]any)); n != 4 {
			t.Fatalf("plots of the last 3 iterations: %d, want 3 roc + 1 table", n)
		}
	})
}

// TestSDKTaskDelete: Task.delete() with its artifacts, models and debug
// images (the SDK's _delete): collect the URIs, tasks.delete with force,
// then delete every file and model; nothing is left and no step fails.
func TestSDKTaskDelete(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		id, pid := c.sdkTaskInit("sdk delete", "doomed task", c.files)
		artURL := c.upload(fmt.Sprintf("sdk delete/doomed task.%s/artifacts/a/a.pkl", id), []byte("pickle"))
		c.ok("tasks.add_or_update_artifacts", map[string]any{"task": id, "force": true, "artifacts": []any{
			map[string]any{"key": "a", "type": "pickle", "mode": "output", "uri": artURL}}})
		modelURL := c.upload(fmt.Sprintf("sdk delete/doomed task.%s/models/m.pt", id), []byte("weights"))
		mid := c.ok("models.create", map[string]any{"uri": modelURL, "name": "doomed model", "project": pid, "task": id})["id"].(string)
		c.at("2.23").ok("tasks.add_or_update_model", map[string]any{"task": id, "name": "m", "model": mid, "type": "output"})
		imgURL := c.upload(fmt.Sprintf("sdk delete/doomed task.%s/metrics/m/v/m_v_00000000.png", id), []byte("png"))
		c.ok("events.add_batch", fmt.Sprintf(`{"type": "training_debug_image", "task": "%s", "iter": 0, "metric": "m", "variant": "v", "url": "%s"}`, id, imgURL))
		c.ok("tasks.completed", map[string]any{"task": id})

		// Task.delete(delete_artifacts_and_models=True):
		task := c.task(id)
		models := c.ok("models.get_all", map[string]any{"task": []string{id}, "only_fields": []string{"id", "uri"}})["models"].([]any)
		if len(models) != 1 {
			t.Fatalf("models.get_all by task: %v", models)
		}
		var eventURIs []string
		for _, etype := range []string{"training_debug_image", "plot"} {
			for _, e := range c.ok("events.get_task_events", map[string]any{"task": id, "order": "asc", "batch_size": 10000, "event_type": etype})["events"].([]any) {
				if u, _ := e.(map[string]any)["url"].(string); u != "" {
					eventURIs = append(eventURIs, u)
				}
			}
		}
		if got := c.ok("tasks.delete", map[string]any{"task": id, "force": true}); got["deleted"] != true || got["deleted_models"] != 1.0 {
			t.Fatalf("tasks.delete = %v", got)
		}
		var failures []string
		for _, a := range task["execution"].(map[string]any)["artifacts"].([]any) {
			if code, _ := c.fileRequest("DELETE", a.(map[string]any)["uri"].(string)); code != 200 {
				failures = append(failures, fmt.Sprint("artifact ", code))
			}
		}
		for _, m := range models {
			m := m.(map[string]any)
			// tasks.delete removed the draft model: 400/201, which the SDK
			// takes as "already deleted" and deletes the file.
			c.fail("models.delete", map[string]any{"model": m["id"], "force": false}, 400, 201)
			if code, _ := c.fileRequest("DELETE", m["uri"].(string)); code != 200 {
				failures = append(failures, fmt.Sprint("model file ", code))
			}
		}
		for _, u := range eventURIs {
			if code, _ := c.fileRequest("DELETE", u); code != 200 {
				failures = append(failures, fmt.Sprint("debug image ", code))
			}
		}
		if len(failures) > 0 || len(eventURIs) != 1 {
			t.Fatalf("Task.delete would report failures %v (event URIs %v)", failures, eventURIs)
		}
		c.fail("tasks.get_by_id", map[string]any{"task": id}, 400, 101)
		for _, u := range []string{artURL, modelURL, imgURL} {
			if code, _ := c.fileRequest("GET", u); code != 404 {
				t.Fatalf("%s still served after Task.delete: %d", u, code)
			}
		}
	})
}
