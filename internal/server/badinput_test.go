package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// exchangeResult is one raw HTTP exchange with the server.
type exchangeResult struct {
	code   int
	header http.Header
	raw    []byte
	env    api.Envelope // decoded when the body is an envelope
}

// httpExchange performs req and returns the answer unchecked.
func httpExchange(t testing.TB, req *http.Request) exchangeResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	r := exchangeResult{code: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.env)
	return r
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// assertEnvelope checks the envelope invariants of spec 1.4 on r.
func assertEnvelope(t testing.TB, what string, r exchangeResult) {
	t.Helper()
	var env struct {
		Meta map[string]json.RawMessage `json:"meta"`
		Data json.RawMessage            `json:"data"`
	}
	if err := json.Unmarshal(r.raw, &env); err != nil || env.Meta == nil {
		t.Fatalf("%s: response is not an envelope (%v): %q", what, err, r.raw)
	}
	if r.env.Meta.ResultCode != r.code {
		t.Fatalf("%s: HTTP %d != result_code %d", what, r.code, r.env.Meta.ResultCode)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(env.Data), []byte("{")) {
		t.Fatalf("%s: data is not an object: %s", what, env.Data)
	}
	if !hex32.MatchString(r.env.Meta.ID) {
		t.Fatalf("%s: meta.id %q is not 32 hex characters", what, r.env.Meta.ID)
	}
	if r.env.Meta.ErrorData == nil {
		t.Fatalf("%s: meta.error_data is not an object", what)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	if r.code == 200 && (r.env.Meta.ResultSubcode != 0 || r.env.Meta.ResultMsg != "OK") {
		t.Fatalf("%s: success with %d/%q", what, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg)
	}
	if r.code != 200 && r.env.Meta.ResultMsg == "" {
		t.Fatalf("%s: error %d without a message", what, r.code)
	}
}

// buildRequest makes a request to c's server. path is sent as given (no
// version prefix added); hdr entries override the defaults (Bearer token,
// JSON content type); an empty value removes the header.
func buildRequest(t testing.TB, c *client, method, path string, body []byte, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, c.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("building request %s: %v", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return req
}

// stateSnapshot returns every task, queue (with entries) and project as the
// API shows them, to prove that a failed call changed nothing.
func stateSnapshot(c *client) map[string]any {
	c.t.Helper()
	return map[string]any{
		"tasks":    c.ok("tasks.get_all", map[string]any{"search_hidden": true, "order_by": []string{"id"}})["tasks"],
		"queues":   c.ok("queues.get_all", map[string]any{"search_hidden": true, "order_by": []string{"id"}, "max_task_entries": 100})["queues"],
		"projects": c.ok("projects.get_all", map[string]any{"search_hidden": true, "order_by": []string{"id"}})["projects"],
	}
}

const unknownID = "0123456789abcdef0123456789abcdef"

func TestBadInput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		taskID := c.createTask("bad input victim")
		queueID := c.defaultQueue()
		big := strings.Repeat("x", 100)
		cases := []struct {
			name     string
			path     string // default "/" + endpoint
			endpoint string
			body     string
			hdr      map[string]string
			code     int
			subcode  int
			msg      string // substring of result_msg
		}{
			{name: "malformed JSON", endpoint: "tasks.create", body: `{"name": "abc", "type": `, code: 400, msg: "Invalid JSON"},
			{name: "malformed JSON trailing garbage", endpoint: "tasks.create", body: `{"name": "abc", "type": "training"} x`, code: 400, msg: "Invalid JSON"},
			{name: "JSON array body", endpoint: "tasks.create", body: `[{"name": "abc", "type": "training"}]`, code: 400},
			{name: "JSON string body", endpoint: "tasks.get_all", body: `"tasks"`, code: 400},
			{name: "JSON number body", endpoint: "queues.get_all", body: `42`, code: 400},
			{name: "name not a string", endpoint: "tasks.create", body: `{"name": 123, "type": "training"}`, code: 400, subcode: 12},
			{name: "page_size not a number", endpoint: "tasks.get_all", body: `{"page_size": "ten"}`, code: 400, subcode: 12},
			{name: "task id not a string", endpoint: "tasks.get_by_id", body: `{"task": 5}`, code: 400, subcode: 12},
			{name: "queue name a list", endpoint: "queues.create", body: `{"name": ["abc"]}`, code: 400, subcode: 12},
			{name: "queues not a list", endpoint: "workers.register", body: `{"worker": "w1", "queues": "` + queueID + `"}`, code: 400, subcode: 12},
			{name: "force not a bool", endpoint: "tasks.enqueue", body: `{"task": "` + taskID + `", "force": "yes"}`, code: 400, subcode: 12},
			{name: "bad task type", endpoint: "tasks.create", body: `{"name": "abc", "type": "nonsense"}`, code: 400, subcode: 12},
			{name: "tasks.create without name", endpoint: "tasks.create", body: `{"type": "training"}`, code: 400, subcode: 11},
			{name: "tasks.create without type", endpoint: "tasks.create", body: `{"name": "abc"}`, code: 400, subcode: 11},
			{name: "tasks.create short name", endpoint: "tasks.create", body: `{"name": " t ", "type": "training"}`, code: 400, subcode: 800},
			{name: "tasks.create unknown project", endpoint: "tasks.create", body: `{"name": "abc", "type": "training", "project": "` + unknownID + `"}`, code: 400, subcode: 401},
			{name: "projects.create without name", endpoint: "projects.create", body: `{"description": "d"}`, code: 400, subcode: 11},
			{name: "projects.create empty body", endpoint: "projects.create", body: ``, code: 400, subcode: 11},
			{name: "projects.create short name", endpoint: "projects.create", body: `{"name": "p", "description": ""}`, code: 400, subcode: 12},
			{name: "projects.create blank name", endpoint: "projects.create", body: `{"name": " / "}`, code: 400, subcode: 407},
			{name: "unknown task", endpoint: "tasks.get_by_id", body: `{"task": "` + unknownID + `"}`, code: 400, subcode: 101},
			{name: "started unknown task", endpoint: "tasks.started", body: `{"task": "` + unknownID + `"}`, code: 400, subcode: 10},
			{name: "unknown queue", endpoint: "queues.get_by_id", body: `{"queue": "` + unknownID + `"}`, code: 400, subcode: 701},
			{name: "unknown project", endpoint: "projects.get_by_id", body: `{"project": "` + unknownID + `"}`, code: 400, subcode: 401},
			{name: "enqueue to unknown queue", endpoint: "tasks.enqueue", body: `{"task": "` + taskID + `", "queue": "` + unknownID + `"}`, code: 400, subcode: 701},
			{name: "register with unknown queue", endpoint: "workers.register", body: `{"worker": "w1", "queues": ["` + unknownID + `"]}`, code: 400, subcode: 701},
			{name: "invalid task name regex", endpoint: "tasks.get_all", body: `{"name": "(["}`, code: 400, subcode: 21},
			{name: "invalid project name regex", endpoint: "projects.get_all", body: `{"name": "*abc"}`, code: 400, subcode: 21},
			{name: "invalid queue name regex", endpoint: "queues.get_all", body: `{"name": "a(b"}`, code: 400, subcode: 21},
			{name: "unknown endpoint", endpoint: "tasks.no_such_thing", body: `{}`, code: 404, msg: "Unable to find endpoint for name tasks.no_such_thing and version " + api.MaxVersion},
			{name: "unknown service", path: "/v2.5/nothing.here", body: `{}`, code: 404, msg: "Unable to find endpoint for name nothing.here and version 2.5"},
			{name: "runtime properties without worker", path: "/workers.get_runtime_properties", body: `{}`, code: 400, subcode: 11},
			{name: "enterprise-only endpoint", path: "/workers.cluster_report", body: `{"worker": "w1"}`, code: 404, msg: "Unable to find endpoint"},
			{name: "version below first", path: "/v2.1/queues.get_all", body: `{}`, code: 404, msg: "Unable to find endpoint for name queues.get_all and version 2.1"},
			{name: "version below peek_task", path: "/v2.14/queues.peek_task", body: `{"queue": "` + queueID + `"}`, code: 404},
			{name: "path without action", path: "/tasks", code: 400, msg: "Invalid request path /tasks"},
			{name: "path with three parts", path: "/tasks.get.all", code: 400, msg: "Invalid request path"},
			{name: "path with extra segment", path: "/tasks.get_all/more", code: 400, msg: "Invalid request path"},
			{name: "path starting with digit", path: "/1tasks.get_all", code: 400, msg: "Invalid request path"},
			{name: "root path", path: "/", code: 400, msg: "Invalid request path"},
			{name: "version not numeric", path: "/v2.x/tasks.get_all", code: 400, subcode: 2},
			{name: "version without minor", path: "/v2/tasks.get_all", code: 400, subcode: 2},
			{name: "version with three parts", path: "/v2.5.1/tasks.get_all", code: 400, subcode: 2},
			{name: "version word", path: "/vlatest/tasks.get_all", code: 400, subcode: 2},
			{name: "batch no items", endpoint: "events.add_batch", body: "\n\n", hdr: map[string]string{"Content-Type": "application/json-lines"}, code: 400, subcode: 17},
			{name: "batch line not JSON", endpoint: "events.add_batch", body: `{"type": "log", "task": "` + taskID + `"}` + "\nnot json\n", hdr: map[string]string{"Content-Type": "application/json-lines"}, code: 400},
			{name: "batch events for unknown task", endpoint: "events.add_batch", body: `{"type": "log", "task": "` + unknownID + `", "msg": "` + big + `"}`, hdr: map[string]string{"Content-Type": "application/json-lines"}, code: 400, subcode: 131},
			{name: "expiration over a year", endpoint: "auth.login?expiration_sec=31536001", code: 400, subcode: 12},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := *c
				c.t = t
				path := tc.path
				if path == "" {
					path = "/" + tc.endpoint
				}
				before := stateSnapshot(&c)
				r := httpExchange(t, buildRequest(t, &c, "GET", path, []byte(tc.body), tc.hdr))
				assertEnvelope(t, path, r)
				m := r.env.Meta
				if r.code != tc.code || m.ResultSubcode != tc.subcode {
					t.Fatalf("%s: got %d/%d (%s), want %d/%d", path, r.code, m.ResultSubcode, m.ResultMsg, tc.code, tc.subcode)
				}
				if !strings.Contains(m.ResultMsg, tc.msg) {
					t.Fatalf("%s: message %q does not contain %q", path, m.ResultMsg, tc.msg)
				}
				if string(r.env.Data) != "{}" {
					t.Fatalf("%s: error data is %s, want {}", path, r.env.Data)
				}
				if after := stateSnapshot(&c); !reflect.DeepEqual(before, after) {
					t.Fatalf("%s: a failed call changed the state\nbefore: %v\nafter:  %v", path, before, after)
				}
			})
		}

		// The explicit end states the failures must leave.
		task := c.task(taskID)
		if task["status"] != "created" {
			t.Fatalf("task status after failed enqueues = %v, want created", task["status"])
		}
		if exec, _ := task["execution"].(map[string]any); exec["queue"] != nil {
			t.Fatalf("task has execution.queue %v after failed enqueues", exec["queue"])
		}
		q := c.ok("queues.get_by_id", map[string]any{"queue": queueID, "max_task_entries": 10})["queue"].(map[string]any)
		if entries, _ := q["entries"].([]any); len(entries) != 0 {
			t.Fatalf("default queue has entries after failed enqueues: %v", entries)
		}
		tasks := c.ok("tasks.get_all", map[string]any{"search_hidden": true, "only_fields": []string{"id", "name"}})["tasks"].([]any)
		if len(tasks) != 1 {
			t.Fatalf("after failed tasks.create calls there are %d tasks, want only the victim: %v", len(tasks), tasks)
		}
		if projects := c.ok("projects.get_all", map[string]any{"search_hidden": true})["projects"].([]any); len(projects) != 0 {
			t.Fatalf("failed projects.create calls left projects: %v", projects)
		}
		if workers := c.ok("workers.get_all", map[string]any{})["workers"].([]any); len(workers) != 0 {
			t.Fatalf("failed workers.register calls left workers: %v", workers)
		}
	})
}

// TestBadInputContentEncoding: a compressed body is refused with the
// reference's plain-text 415 and never reaches the handler.
func TestBadInputContentEncoding(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		body := []byte(`{"name": "encoded task", "type": "training"}`)
		for _, enc := range []string{"gzip", "deflate", "br", "GZIP"} {
			r := httpExchange(t, buildRequest(t, c, "POST", "/tasks.create", body, map[string]string{"Content-Encoding": enc}))
			if r.code != http.StatusUnsupportedMediaType {
				t.Fatalf("Content-Encoding %s: HTTP %d %s, want 415", enc, r.code, r.raw)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("Content-Encoding %s: Content-Type %q, want text/plain", enc, ct)
			}
			if got := string(r.raw); got != "Content encoding is not supported\n" {
				t.Fatalf("Content-Encoding %s: body %q", enc, got)
			}
		}
		if tasks := c.ok("tasks.get_all", map[string]any{"search_hidden": true})["tasks"].([]any); len(tasks) != 0 {
			t.Fatalf("refused encoded tasks.create created %d tasks", len(tasks))
		}
		// "identity" is no encoding at all.
		r := httpExchange(t, buildRequest(t, c, "POST", "/tasks.create", body, map[string]string{"Content-Encoding": "identity"}))
		assertEnvelope(t, "identity", r)
		if r.code != 200 {
			t.Fatalf("Content-Encoding identity: %d %s", r.code, r.env.Meta.ResultMsg)
		}
	})
}

// TestBadInputBodyLimit: a body over the limit is refused with a 413
// envelope and nothing is written; a body at the limit is served.
func TestBadInputBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := newTestServer(t, b.open(t), server.Options{MaxBodyBytes: limit})
			makeBody := func(size int) []byte {
				head := `{"name": "big task", "type": "training", "comment": "`
				tail := `"}`
				return []byte(head + strings.Repeat("c", size-len(head)-len(tail)) + tail)
			}
			for _, endpoint := range []string{"tasks.create", "events.add_batch", "unknown.endpoint_is_404_first"} {
				r := httpExchange(t, buildRequest(t, c, "POST", "/"+endpoint, makeBody(limit+1), nil))
				assertEnvelope(t, endpoint, r)
				want := http.StatusRequestEntityTooLarge
				if strings.HasPrefix(endpoint, "unknown") {
					want = http.StatusNotFound
				}
				if r.code != want {
					t.Fatalf("%s with %d bytes: %d %s, want %d", endpoint, limit+1, r.code, r.env.Meta.ResultMsg, want)
				}
			}
			if tasks := c.ok("tasks.get_all", map[string]any{"search_hidden": true})["tasks"].([]any); len(tasks) != 0 {
				t.Fatalf("oversized tasks.create created %d tasks", len(tasks))
			}
			r := httpExchange(t, buildRequest(t, c, "POST", "/tasks.create", makeBody(limit), nil))
			assertEnvelope(t, "at limit", r)
			if r.code != 200 {
				t.Fatalf("tasks.create with exactly %d bytes: %d %s", limit, r.code, r.env.Meta.ResultMsg)
			}
		})
	}
}

// TestBadInputNUL: a NUL character (JSON \u0000) in any string is stored as
// U+FFFD; PostgreSQL text columns cannot hold NUL, and a lookup or insert
// of such a string used to fail there with a 500.
func TestBadInputNUL(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		task := c.createTask("nul victim")
		cases := []struct {
			endpoint, body string
			code, subcode  int
		}{
			{"tasks.get_by_id", `{"task": "a\u0000"}`, 400, 101},
			{"tasks.started", `{"task": "a\u0000"}`, 400, 10},
			{"tasks.get_all", `{"id": ["a\u0000"], "status": ["x\u0000"], "project": ["p\u0000"]}`, 200, 0},
			{"projects.get_by_id", `{"project": "a\u0000"}`, 400, 401},
			{"queues.get_by_id", `{"queue": "a\u0000"}`, 400, 701},
			{"queues.get_next_task", `{"queue": "a\u0000"}`, 400, 701},
			{"events.get_task_log", `{"task": "a\u0000"}`, 400, 101},
			{"projects.create", `{"name": "nul\u0000project"}`, 200, 0},
			{"queues.create", `{"name": "nul\u0000queue"}`, 200, 0},
			{"workers.register", `{"worker": "w\u0000"}`, 200, 0},
			{"workers.status_report", `{"worker": "w\u0000", "timestamp": 1}`, 200, 0},
			{"tasks.enqueue", `{"task": "` + task + `", "queue_name": "q\u0000q"}`, 200, 0},
			{"tasks.dequeue", `{"task": "` + task + `"}`, 200, 0},
			{"tasks.edit", `{"task": "` + task + `", "comment": "a\u0000b \\u0000", "runtime": {"k\u0000": "v"}}`, 200, 0},
			{"tasks.get_all?id=a%00&name=%00", ``, 200, 0},
			{"events.add_batch", `{"type": "training_stats_scalar", "task": "` + task + `", "metric": "m\u0000", "variant": "v", "value": 1, "iter": 1}` +
				"\n" + `{"type": "log", "task": "` + task + `", "msg": "bin\u0000ary"}`, 200, 0},
		}
		for _, tc := range cases {
			code, env := c.raw(tc.endpoint, tc.body)
			if code != tc.code || env.Meta.ResultSubcode != tc.subcode {
				t.Errorf("%s %s: %d/%d %s, want %d/%d", tc.endpoint, tc.body, code, env.Meta.ResultSubcode, env.Meta.ResultMsg, tc.code, tc.subcode)
			}
		}
		got := c.task(task)
		if got["comment"] != "a\uFFFDb \\u0000" {
			t.Errorf("comment = %q, want NUL replaced and the escaped backslash kept", got["comment"])
		}
		if rt, _ := got["runtime"].(map[string]any); rt["k\uFFFD"] != "v" {
			t.Errorf("runtime = %v", got["runtime"])
		}
		events := c.ok("events.get_task_log", map[string]any{"task": task})["events"].([]any)
		if len(events) != 1 || events[0].(map[string]any)["msg"] != "bin\uFFFDary" {
			t.Errorf("log = %v", events)
		}
	})
}

// TestBadInputHugeScalars: scalar values near the float64 limit must not
// overflow the running mean (last_metrics) or the histogram averages to
// ±Inf, which JSON cannot carry: the batch failed with a 500 and was lost.
func TestBadInputHugeScalars(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		task := c.createTask("huge scalars")
		var lines []string
		for i, v := range []string{"1.7e308", "1.7e308", "1.7e308", "-1.7e308", "1.7e308", "1.7e308"} {
			lines = append(lines, `{"type": "training_stats_scalar", "task": "`+task+`", "metric": "m", "variant": "v", "value": `+v+`, "iter": `+string(rune('0'+i))+`}`)
		}
		for _, batch := range []string{strings.Join(lines[:2], "\n"), strings.Join(lines[2:], "\n")} {
			if code, env := c.raw("events.add_batch", batch); code != 200 {
				t.Fatalf("add_batch: %d %s", code, env.Meta.ResultMsg)
			}
		}
		lm := c.task(task)["last_metrics"].(map[string]any)
		for _, variants := range lm {
			for _, m := range variants.(map[string]any) {
				m := m.(map[string]any)
				if m["count"] != 6.0 || m["max_value"] != 1.7e308 || m["min_value"] != -1.7e308 {
					t.Errorf("last_metrics = %v", m)
				}
				if mean, _ := m["mean_value"].(float64); mean < 1e308 || mean > 1.7e308 {
					t.Errorf("mean_value = %v, want about 1.13e308", m["mean_value"])
				}
			}
		}
		hist := c.ok("events.scalar_metrics_iter_histogram", map[string]any{"task": task, "samples": 2})
		ys := hist["m"].(map[string]any)["v"].(map[string]any)["y"].([]any)
		if len(ys) != 2 {
			t.Errorf("histogram y = %v, want 2 buckets", ys)
		}
	})
}

// TestBadInputHugeNumbers: numbers near the int64 limit must not overflow.
// A huge page made page*page_size wrap negative and the slice panic (500);
// a huge worker timeout wrapped to a negative duration and the worker
// expired at once.
func TestBadInputHugeNumbers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		c.createTask("huge numbers")
		const maxInt = "9223372036854775807"
		for _, tc := range []struct{ endpoint, body, key string }{
			{"tasks.get_all", `{"page": ` + maxInt + `, "page_size": 500}`, "tasks"},
			{"tasks.get_all", `{"page": ` + maxInt + `}`, "tasks"},
			{"tasks.get_all?page=4611686018427387904&page_size=2", ``, "tasks"},
			{"projects.get_all", `{"page": 4611686018427387904, "page_size": 2}`, "projects"},
			{"queues.get_all", `{"page": ` + maxInt + `}`, "queues"},
			{"tasks.get_all", `{"size": ` + maxInt + `, "scroll_id": "o` + maxInt + `"}`, "tasks"},
		} {
			code, env := c.raw(tc.endpoint, tc.body)
			if code != 200 {
				t.Errorf("%s %s: %d %s", tc.endpoint, tc.body, code, env.Meta.ResultMsg)
				continue
			}
			var data map[string][]any
			json.Unmarshal(env.Data, &data)
			if len(data[tc.key]) != 0 {
				t.Errorf("%s %s: a page past the end returned %v", tc.endpoint, tc.body, data[tc.key])
			}
		}
		c.ok("workers.register", map[string]any{"worker": "forever", "timeout": int64(1<<63 - 1)})
		c.ok("workers.register", map[string]any{"worker": "long", "timeout": 9223372036})
		for _, body := range []map[string]any{{}, {"last_seen": int64(1<<63 - 1)}} {
			var ids []string
			for _, w := range c.ok("workers.get_all", body)["workers"].([]any) {
				ids = append(ids, str(w.(map[string]any)["id"]))
			}
			if len(ids) != 2 {
				t.Errorf("workers.get_all %v = %v, want both workers with huge timeouts", body, ids)
			}
		}
	})
}
