package server_test

import (
	"path/filepath"
	"strings"
	"testing"
)

type fuzzSeed struct {
	path, query string
	body        []byte
	contentType string
	flags       uint8
}

// fuzzSeeds returns realistic requests (from the captures, with the stub's
// ids replaced by real ones) and malformed ones.
func fuzzSeeds(f *testing.F, ft *fuzzTarget) []fuzzSeed {
	var seeds []fuzzSeed
	if files, _ := filepath.Glob(filepath.Join(capturesDir, "*.txt")); len(files) > 0 {
		seen := map[string]bool{}
		for _, file := range files {
			for _, cl := range readCapture(f, file) {
				body := capturePlaceholder.ReplaceAllStringFunc(cl.body, func(ph string) string {
					if strings.HasPrefix(ph, "c0de") {
						return "$Q"
					}
					return "$T"
				})
				if seen[cl.path+body] {
					continue
				}
				seen[cl.path+body] = true
				var flags uint8 = fuzzWorkerHdrs
				if strings.HasPrefix(cl.headers["Authorization"], "Basic") {
					flags |= 1
				}
				if cl.method == "POST" {
					flags |= fuzzPost
				}
				ct := cl.headers["Content-Type"] + cl.headers["Content-type"]
				seeds = append(seeds, fuzzSeed{cl.path, "", []byte(body), ct, flags})
			}
		}
	} else {
		f.Logf("no captures at %s; using the built-in seeds only", capturesDir)
	}
	task, queue := "$T", "$Q"
	for _, s := range []fuzzSeed{
		{"/auth.login", "expiration_sec=60", nil, "", 1},
		{"/auth.login", "expiration_sec=99999999999999999999", nil, "", 1},
		{"/debug.ping", "a.b=1&a=2&l[]=x&n=1.5&t=True", []byte(`{"x": [1, {"y": null}]}`), "application/json", 2},
		{"/v2.5/tasks.get_all", "page_size=1&order_by=-name", []byte(`{"only_fields": ["id", "execution.queue"], "name": "^fu"}`), "application/json", 0},
		{"/tasks.get_all", "", []byte(`{"status": ["__$not", "created"], "tags": ["-x", null], "last_update": [">2020-01-01"]}`), "", 0},
		{"/tasks.get_all", "", []byte(`{"name": "(["}`), "", 0},
		{"/tasks.get_all", "", []byte(`{"size": 1, "scroll_id": "o1"}`), "", 0},
		{"/tasks.edit", "", []byte(`{"task": "` + task + `", "force": true, "execution": {"docker_cmd": "img --x", "parameters": {"a": 1}}}`), "", 0},
		{"/v2.5/tasks.enqueue", "", []byte(`{"task": "` + task + `", "queue": "` + queue + `"}`), "", 0},
		{"/queues.get_next_task", "", []byte(`{"queue": "` + queue + `", "get_task_info": true, "wait_ms": 100}`), "", 0},
		{"/tasks.stop", "", []byte(`{"task": "` + task + `", "force": true}`), "", 0},
		{"/tasks.reset", "", []byte(`{"task": "` + task + `", "clear_all": true}`), "", 0},
		{"/tasks.clone", "", []byte(`{"task": "` + task + `", "new_project_name": "a/b/cde"}`), "", 0},
		{"/tasks.edit_hyper_params", "", []byte(`{"task": "` + task + `", "hyperparams": [{"section": "Args", "name": "x", "value": "1"}], "force": true}`), "", 0},
		{"/events.add_batch", "", []byte(`{"type": "training_stats_scalar", "task": "` + task + `", "metric": "m", "variant": "v", "value": 1.5, "iter": 3}` + "\n" + `[{"type": "log", "task": "` + task + `", "msg": "x"}]`), "application/json-lines", fuzzPost},
		{"/events.add_batch", "", []byte("\n{}\n[1]\n"), "application/json-lines", fuzzPost},
		{"/events.scalar_metrics_iter_histogram", "", []byte(`{"task": "` + task + `", "samples": 1}`), "", 0},
		{"/events.get_task_log", "", []byte(`{"task": "` + task + `", "from_timestamp": 1e300, "navigate_earlier": false}`), "", 0},
		{"/workers.status_report", "", []byte(`{"worker": "w", "timestamp": 1, "task": "` + task + `", "machine_stats": null, "tags": null}`), "", 0},
		{"/workers.get_all", "last_seen=-1", nil, "", 0},
		{"/projects.create", "", []byte(`{"name": " a / /bcd "}`), "", 0},
		{"/tasks.create", "", []byte(`{"name": "abc", "type": "training", "hyperparams": {"s": {"n": {"value": "v"}}}, "container": {"image": null}}`), "", 0},
		{"/tasks.create", "", []byte(`{"name": "abc", "type": "training"`), "", 0},
		{"/tasks.create", "", []byte(`[1, 2]`), "", 0},
		{"/tasks.create", "", []byte(`{"name": "abc", "type": "training"}`), "", fuzzGzip},
		{"/v2.x/tasks.get_all", "", nil, "", 0},
		{"/v1.0/debug.ping", "", nil, "", 0},
		{"/v999.999/tasks.get_all", "", nil, "", 0},
		{"/v2.1/queues.get_all", "", nil, "", 0},
		{"tasks.get_all", "", nil, "", 0},
		{"//tasks.get_all", "", nil, "", 0},
		{"/tasks.get_all//", "", nil, "", 0},
		{"", "", nil, "", 0},
		{"/\x00.\xff", "%zz", []byte{0xff, 0xfe}, "\x00", 0xff},
		{"/workers.get_runtime_properties", "", []byte(`{"worker": "w"}`), "", fuzzTrx},
		{"/workers.cluster_report", "", []byte(`{"worker": "w"}`), "", 0},
		{"/models.create", "", []byte(`{"name": "m", "uri": "file:///m.pkl", "task": "$T", "labels": {"a": 1}}`), "", 0},
		{"/events.debug_images", "", []byte(`{"metrics": [{"task": "$T", "metric": "m"}], "iters": 3, "scroll_id": "e30"}`), "", 0},
		{"/events.add_batch", "", []byte(`{"type": "training_stats_scalar", "task": "$T", "metric": "m", "variant": "v", "value": 1e308, "iter": 1}` + "\n" +
			`{"type": "training_stats_scalar", "task": "$T", "metric": "m", "variant": "v", "value": 1e308, "iter": 2}`), "application/json-lines", fuzzPost},
		{"/queues.create", "", []byte(`{"name": "q\u0000\\u0000"}`), "", 0},
		{"/tasks.get_all", "id=%00&status=a%00", nil, "", 0},
		{"/tasks.get_all", "page=9223372036854775807", []byte(`{"page_size": 7}`), "", 0},
		{"/workers.register", "", []byte(`{"worker": "w", "timeout": 9223372036854775807, "queues": ["$Q"]}`), "", 0},
		// Sessions.
		{"/auth.logout", "", nil, "", 0},
		{"/auth.logout", "", []byte(`{}`), "", 1},
		{"/v2.2/auth.logout", "", nil, "", 7},
		// Models.
		{"/models.get_all", "", []byte(`{"id": ["$M", "x"], "task": "$T", "project": ["__$not", "p"], "ready": false, "include_subprojects": true}`), "", 0},
		{"/models.get_by_id", "", []byte(`{"model": "$M"}`), "", 0},
		{"/models.edit", "", []byte(`{"model": "$M", "name": "renamed", "labels": {"cat": 1}, "design": {"x": "y"}, "task": "$T", "iteration": 7}`), "", 0},
		{"/models.update", "", []byte(`{"model": "$M", "ready": true, "comment": null}`), "", 0},
		{"/models.update_for_task", "", []byte(`{"task": "$T", "uri": "s3://b/m.pt", "name": "out", "iteration": 3}`), "", 0},
		{"/models.update_for_task", "", []byte(`{"task": "$T", "override_model_id": "$M"}`), "", 0},
		{"/models.set_ready", "", []byte(`{"model": "$M", "publish_task": true, "force_publish_task": true}`), "", 0},
		{"/models.publish_many", "", []byte(`{"ids": ["$M", "$M", ""], "publish_tasks": false}`), "", 0},
		{"/models.add_or_update_metadata", "", []byte(`{"model": "$M", "metadata": [{"key": "k", "type": "str", "value": "v"}, {"key": ""}]}`), "", 0},
		{"/models.delete_metadata", "", []byte(`{"model": "$M", "keys": ["k", "missing"]}`), "", 0},
		{"/models.delete_many", "", []byte(`{"ids": "$M", "force": true}`), "", 0},
		{"/tasks.add_or_update_model", "", []byte(`{"task": "$T", "name": "in", "model": "$M", "type": "input", "iteration": 1}`), "", 0},
		{"/tasks.delete_models", "", []byte(`{"task": "$T", "models": [{"name": "in", "type": "input"}, {"name": 5}]}`), "", 0},
		// Event readers.
		{"/events.get_task_events", "", []byte(`{"task": "$T", "event_type": "training_stats_scalar", "batch_size": 1, "order": "desc", "scroll_id": "x"}`), "", 0},
		{"/events.get_scalar_metrics_and_variants", "", []byte(`{"task": "$T"}`), "", 0},
		{"/events.scalar_metrics_iter_histogram", "", []byte(`{"task": "$T", "key": "timestamp", "samples": -1}`), "", 0},
		{"/events.get_task_plots", "", []byte(`{"task": "$T", "iters": 1, "metrics": [{"metric": "m", "variants": ["v"]}], "scroll_id": ""}`), "", 0},
		{"/events.debug_images", "", []byte(`{"metrics": [{"task": "$T", "metric": "m"}, {"task": "$M"}], "iters": 0, "navigate_earlier": false}`), "", 0},
		{"/events.get_task_log", "", []byte(`{"task": "$T", "batch_size": 0}`), "", 0},
		{"/events.delete_for_task", "", []byte(`{"task": "$T", "allow_locked": true}`), "", 0},
		// Batches: a model's event, an array line, a locked task, NUL, a
		// list over the limit in a plain body.
		{"/events.add_batch", "", []byte(`{"type": "training_stats_scalar", "task": "$M", "model_event": true, "metric": "m", "variant": "v", "value": 2, "iter": 1}` + "\n" +
			`[{"type": "plot", "task": "$T", "plot_str": "{}", "allow_locked": true}, {"type": "training_debug_image", "task": "$T", "url": "http://x/y.png"}]` + "\n\n" +
			`{"type": "log", "task": "$T", "msg": "a\u0000b", "level": "info"}`), "application/json-lines", fuzzPost},
		{"/events.add_batch", "", []byte("null"), "", fuzzPost},
		{"/events.add_batch", "", []byte("[{}, 1]"), "", fuzzPost},
		{"/events.add", "", []byte(`{"type": "log", "task": "$T", "msg": "single"}`), "", 0},
		{"/tasks.get_all", "", []byte(`{"id": [` + strings.Repeat(`"x",`, 50) + `"y"], "tags": ["__$all", "a", "-b", null]}`), "", 0},
		{"/queues.add_task", "", []byte(`{"queue": "$Q", "task": "$T", "update_execution_queue": false}`), "", 0},
	} {
		seeds = append(seeds, s)
	}
	return seeds
}
