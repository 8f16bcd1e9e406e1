package server_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// capturesDir holds the recorded client sessions (see its README.md).
var capturesDir = filepath.Join("testdata", "captures")

// capturedCall is one request of a capture file (see its README).
type capturedCall struct {
	line      int
	method    string
	path      string
	headers   map[string]string
	body      string // "" when the request had none
	truncated bool   // the capture cut the body; body is a repaired prefix
}

var (
	captureRequestLine = regexp.MustCompile(`^\S+\s+:\d+\s+([A-Z]+)\s+(\S+)\s*(?:\[(.*)\])?\s*$`)
	captureCut         = regexp.MustCompile(`…\(\d+ bytes\)\s*$`)
	// The stub server's ids: queue c0de…, task 7a5c…, project 9b0c….
	capturePlaceholder = regexp.MustCompile(`\b(?:c0de|7a5c|9b0c)[0-9a-f]{28}\b`)
)

// readCapture parses a capture file. Bodies the capture cut short are
// repaired into valid JSON from what is visible (repairTruncatedJSON).
func readCapture(t testing.TB, path string) []capturedCall {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening capture: %v", err)
	}
	defer f.Close()
	var calls []capturedCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(calls) == 0 {
				t.Fatalf("%s:%d: body before any request", path, n)
			}
			last := &calls[len(calls)-1]
			body := strings.TrimSpace(line)
			if loc := captureCut.FindStringIndex(body); loc != nil {
				repaired, ok := repairTruncatedJSON(body[:loc[0]])
				if !ok {
					t.Fatalf("%s:%d: cannot repair truncated body %q", path, n, body)
				}
				body, last.truncated = repaired, true
			} else if !json.Valid([]byte(body)) {
				t.Fatalf("%s:%d: body is not JSON: %q", path, n, body)
			}
			last.body = body
			continue
		}
		m := captureRequestLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: unrecognised line %q", path, n, line)
		}
		hdr := map[string]string{}
		for _, h := range strings.Split(m[3], ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(h), ":"); ok {
				hdr[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		calls = append(calls, capturedCall{line: n, method: m[1], path: m[2], headers: hdr})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return calls
}

// repairTruncatedJSON turns the visible prefix of a cut JSON object into a
// valid one: it closes a cut string value, or else drops the trailing
// partial member, and closes the open containers. It keeps as much of the
// prefix as it can.
func repairTruncatedJSON(s string) (string, bool) {
	closers := func(stack []byte) string {
		var b strings.Builder
		for i := len(stack) - 1; i >= 0; i-- {
			if stack[i] == '{' {
				b.WriteByte('}')
			} else {
				b.WriteByte(']')
			}
		}
		return b.String()
	}
	type cut struct {
		pos   int
		stack []byte
	}
	var stack []byte
	var commas []cut
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inString && escaped:
			escaped = false
		case inString && ch == '\\':
			escaped = true
		case inString:
			inString = ch != '"'
		case ch == '"':
			inString = true
		case ch == '{' || ch == '[':
			stack = append(stack, ch)
		case ch == '}' || ch == ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ch == ',':
			commas = append(commas, cut{i, slices.Clone(stack)})
		}
	}
	var candidates []string
	if inString {
		prefix := s
		if escaped {
			prefix = prefix[:len(prefix)-1]
		}
		candidates = append(candidates, prefix+`"`+closers(stack))
	} else {
		candidates = append(candidates, strings.TrimRight(s, " \t,")+closers(stack))
	}
	for i := len(commas) - 1; i >= 0; i-- {
		candidates = append(candidates, s[:commas[i].pos]+closers(commas[i].stack))
	}
	for _, c := range candidates {
		var v map[string]any
		if json.Unmarshal([]byte(c), &v) == nil {
			return c, true
		}
	}
	return "", false
}

// sdkNames renames the SDK probe's project "p" and task "t": the capture
// was taken against a stub, and the reference server (like ours) rejects
// names shorter than 3 characters (400/12 for the project, 400/800 for the
// task; spec 2.4, 2.6).
var sdkNames = strings.NewReplacer(
	`"name": "^p$"`, `"name": "^sdk-probe$"`,
	`"name": "p"`, `"name": "sdk-probe"`,
	`"name": "t"`, `"name": "sdk probe task"`,
)

func TestCaptureReplay(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"agent-new-task.txt", "agent-old-task.txt", "agent-new-stub.txt", "sdk-new-stub.txt", "sdk-old-stub.txt"} {
		calls := readCapture(t, filepath.Join(capturesDir, file))
		t.Run(strings.TrimSuffix(file, ".txt"), func(t *testing.T) {
			t.Parallel()
			forEachBackend(t, func(t *testing.T, c *client) { replayCapture(t, c, calls) })
		})
	}
}

// replayCapture sends calls to c's server in order, as the client sent
// them, with the stub's ids mapped to real objects, and checks the end state.
func replayCapture(t *testing.T, c *client, calls []capturedCall) {
	// Placeholders used before a create call returns them must exist up
	// front; the others are bound to create results in order.
	ids := map[string]string{}
	var pending []string
	queueID := c.defaultQueue()
	created := map[string]int{} // placeholder kind -> create calls not yet bound
	for _, cl := range calls {
		for _, ph := range capturePlaceholder.FindAllString(cl.body, -1) {
			if _, ok := ids[ph]; ok || slices.Contains(pending, ph) {
				continue
			}
			switch kind := ph[:4]; {
			case kind == "c0de":
				ids[ph] = queueID
			case created[kind] > 0:
				created[kind]--
				pending = append(pending, ph)
			case kind == "7a5c":
				id := c.createTask("captured agent task")
				c.ok("tasks.enqueue", map[string]any{"task": id, "queue": queueID})
				ids[ph] = id
			case kind == "9b0c":
				ids[ph] = c.ok("projects.create", map[string]any{"name": "captured project " + ph[28:]})["id"].(string)
			default:
				t.Fatalf("line %d: %s is used but never created", cl.line, ph)
			}
		}
		switch cl.path[strings.LastIndex(cl.path, "/")+1:] {
		case "tasks.create":
			created["7a5c"]++
		case "projects.create":
			created["9b0c"]++
		}
	}
	taskID := ""
	var logs []string // messages of the log events sent, in order
	pops := 0
	token := c.token
	lastStamp := 0.0 // of the last event sent
	for _, cl := range calls {
		ep := cl.path[strings.LastIndex(cl.path, "/")+1:]
		body := sdkNames.Replace(capturePlaceholder.ReplaceAllStringFunc(cl.body, func(ph string) string {
			if id, ok := ids[ph]; ok {
				return id
			}
			return ph
		}))
		hdr := map[string]string{"Content-Type": "", "Authorization": ""}
		for k, v := range cl.headers {
			switch {
			case strings.EqualFold(k, "Authorization") && strings.HasPrefix(v, "Basic"):
				hdr["Authorization"] = basicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
			case strings.EqualFold(k, "Authorization"):
				hdr["Authorization"] = "Bearer " + token
			case strings.EqualFold(k, "Content-Type"):
				hdr["Content-Type"] = v
			default:
				hdr[k] = v
			}
		}
		if ep == "events.add_batch" && cl.truncated {
			body = stampEvents(body, lastStamp)
		}
		what := cl.method + " " + cl.path
		r := httpExchange(t, buildRequest(t, c, cl.method, cl.path, []byte(body), hdr))
		assertEnvelope(t, what, r)
		if ep == "workers.get_runtime_properties" {
			// Served (as the enterprise server does): the daemon's worker
			// has set none.
			var data struct {
				RuntimeProperties []any `json:"runtime_properties"`
			}
			if r.code != 200 || json.Unmarshal(r.env.Data, &data) != nil || data.RuntimeProperties == nil || len(data.RuntimeProperties) != 0 {
				t.Fatalf("line %d: %s: %d %s %s, want an empty runtime_properties list", cl.line, what, r.code, r.env.Meta.ResultMsg, r.env.Data)
			}
			continue
		}
		if r.code != 200 {
			t.Fatalf("line %d: %s %s: %d/%d %s", cl.line, what, body, r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg)
		}
		var data map[string]any
		json.Unmarshal(r.env.Data, &data)
		switch ep {
		case "auth.login":
			token, _ = data["token"].(string)
		case "tasks.create", "projects.create":
			id, _ := data["id"].(string)
			prefix := map[string]string{"tasks.create": "7a5c", "projects.create": "9b0c"}[ep]
			i := slices.IndexFunc(pending, func(ph string) bool { return strings.HasPrefix(ph, prefix) })
			if i < 0 || id == "" {
				t.Fatalf("line %d: %s returned %q; nothing to bind it to", cl.line, ep, id)
			}
			ids[pending[i]] = id
			pending = slices.Delete(pending, i, i+1)
			if ep == "tasks.create" {
				taskID = id
			}
		case "queues.get_next_task":
			if entry, ok := data["entry"].(map[string]any); ok {
				pops++
				if taskID = ids["7a5c0000000000000000000000000042"]; entry["task"] != taskID {
					t.Fatalf("line %d: popped %v, want the enqueued task %s", cl.line, entry["task"], taskID)
				}
			}
		case "events.add_batch":
			for _, line := range strings.Split(body, "\n") {
				var ev map[string]any
				if json.Unmarshal([]byte(line), &ev) == nil && ev["type"] == "log" {
					lastStamp, _ = ev["timestamp"].(float64)
					msg, _ := ev["msg"].(string)
					logs = append(logs, msg)
				}
			}
			if int(data["added"].(float64)) == 0 {
				t.Fatalf("line %d: events.add_batch added nothing: %v", cl.line, data)
			}
		}
	}
	if len(pending) > 0 {
		t.Fatalf("placeholders never created: %v", pending)
	}
	c.token = token
	if strings.Contains(calls[0].headers["X-ClearML-Agent"], "api-") {
		checkAgentEnd(t, c, queueID, taskID, pops, logs)
	} else {
		checkSDKEnd(t, c, taskID, ids, logs)
	}
}

func checkAgentEnd(t *testing.T, c *client, queueID, taskID string, pops int, logs []string) {
	q := c.ok("queues.get_by_id", map[string]any{"queue": queueID, "max_task_entries": 10})["queue"].(map[string]any)
	if entries, _ := q["entries"].([]any); len(entries) != 0 {
		t.Errorf("default queue still has entries: %v", entries)
	}
	for _, w := range c.ok("workers.get_all", map[string]any{})["workers"].([]any) {
		t.Errorf("worker left registered after unregister: %v", w.(map[string]any)["id"])
	}
	if taskID == "" { // the idle daemon: nothing to run
		if pops != 0 {
			t.Errorf("idle daemon popped %d tasks", pops)
		}
		return
	}
	if pops != 1 {
		t.Errorf("the task was popped %d times, want once", pops)
	}
	task := c.task(taskID)
	if task["status"] != "completed" || task["status_reason"] != "worker execution done" {
		t.Errorf("task ended %v (%v), want completed (worker execution done)", task["status"], task["status_reason"])
	}
	if task["last_worker"] != "peers-agent:0" {
		t.Errorf("last_worker = %v, want peers-agent:0", task["last_worker"])
	}
	if rt, _ := task["runtime"].(map[string]any); rt["_exec_agent_hostname"] != "vm" {
		t.Errorf("runtime = %v, want _exec_agent_hostname from tasks.edit", task["runtime"])
	}
	checkLog(t, c, taskID, logs)
}

func checkSDKEnd(t *testing.T, c *client, taskID string, ids map[string]string, logs []string) {
	task := c.task(taskID)
	if task["status"] != "completed" || task["status_reason"] != "completed" {
		t.Errorf("task ended %v (%q), want completed (\"completed\")", task["status"], task["status_reason"])
	}
	if task["name"] != "sdk probe task" || task["type"] != "training" {
		t.Errorf("task name/type = %v/%v", task["name"], task["type"])
	}
	project := ids["9b0c0000000000000000000000000001"]
	if task["project"] != project {
		t.Errorf("task project = %v, want %s", task["project"], project)
	}
	p := c.ok("projects.get_by_id", map[string]any{"project": project})["project"].(map[string]any)
	if p["name"] != "sdk-probe" {
		t.Errorf("project name = %v", p["name"])
	}
	if rt, _ := task["runtime"].(map[string]any); rt["progress"] != "100" {
		t.Errorf("runtime = %v, want progress 100 (runtime edits replace)", task["runtime"])
	}
	if script, _ := task["script"].(map[string]any); script["entry_point"] != "sdk_probe.py" || script["requirements"] == nil {
		t.Errorf("script = %v, want entry_point and requirements", task["script"])
	}
	checkLog(t, c, taskID, logs)
}

// checkLog reads the task's console log back and compares it with what the
// client sent.
func checkLog(t *testing.T, c *client, taskID string, sent []string) {
	if len(sent) == 0 {
		t.Fatal("the capture sent no log events")
	}
	data := c.ok("events.get_task_log", map[string]any{"task": taskID, "order": "asc", "batch_size": 1000})
	events, _ := data["events"].([]any)
	var got []string
	for _, e := range events {
		msg, _ := e.(map[string]any)["msg"].(string)
		got = append(got, msg)
	}
	if !slices.Equal(got, sent) {
		t.Errorf("task log:\n got  %q\n want %q", got, sent)
	}
	if total, _ := data["total"].(float64); int(total) != len(sent) {
		t.Errorf("task log total = %v, want %d", data["total"], len(sent))
	}
}

// stampEvents gives the events of a cut batch that lost their timestamp
// the one after the previous event's, so that the log keeps the order in
// which the client sent it (the server would stamp them with its clock).
func stampEvents(body string, last float64) string {
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["timestamp"] != nil || last == 0 {
			continue
		}
		last++
		ev["timestamp"] = int64(last)
		b, _ := json.Marshal(ev)
		lines[i] = string(b)
	}
	return strings.Join(lines, "\n")
}

func TestRepairTruncatedJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"a": 1, "msg": "hello wor`, `{"a": 1, "msg": "hello wor"}`},
		{`{"a": 1, "msg": "ends in \`, `{"a": 1, "msg": "ends in "}`},
		{`{"a": {"pip": ["x==1", "-e git+fi`, `{"a": {"pip": ["x==1", "-e git+fi"]}}`},
		{`{"a": {"pip": "x\n", `, `{"a": {"pip": "x\n"}}`},
		{`{"a": 1, "rt": {"os": "linux", "cpu_co`, `{"a": 1, "rt": {"os": "linux"}}`},
		{`{"a": 1, "tags":`, `{"a": 1}`},
		{`{"a": 1, "model_event": fa`, `{"a": 1}`},
	} {
		got, ok := repairTruncatedJSON(tc.in)
		if !ok || got != tc.want {
			t.Errorf("repair(%s) = %s, %v; want %s", tc.in, got, ok, tc.want)
		}
	}
}
