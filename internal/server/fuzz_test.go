package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// fuzzTarget is a real server over SQLite, built once per fuzzing process
// and called in-process through ServeHTTP.
type fuzzTarget struct {
	srv   *server.Server
	creds server.Credentials
	queue string
	task  string
	model string

	mu    sync.Mutex
	token string // replaced when an input logs it out
}

// bearer returns the current token.
func (ft *fuzzTarget) bearer() string {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.token
}

// login gets a fresh token with the key pair.
func (ft *fuzzTarget) login(t testing.TB) {
	req := httptest.NewRequest("GET", "/auth.login", nil)
	req.Header.Set("Authorization", basicAuth(ft.creds.AccessKey, ft.creds.SecretKey))
	rec := httptest.NewRecorder()
	ft.srv.ServeHTTP(rec, req)
	var env struct {
		Data api.LoginResponse `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || rec.Code != 200 || env.Data.Token == "" {
		t.Fatalf("auth.login: %d %s", rec.Code, rec.Body.Bytes())
	}
	ft.mu.Lock()
	ft.token = env.Data.Token
	ft.mu.Unlock()
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	st := openStore(f, filepath.Join(f.TempDir(), "fuzz.db"))
	srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
	if err != nil {
		f.Fatalf("server.New: %v", err)
	}
	creds, err := server.CreateCredentials(context.Background(), st, "")
	if err != nil {
		f.Fatalf("credentials: %v", err)
	}
	ft := &fuzzTarget{srv: srv, creds: creds}
	call := func(path, body string, authz string) map[string]any {
		req := httptest.NewRequest("GET", path, strings.NewReader(body))
		req.Header.Set("Authorization", authz)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var env api.Envelope
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || rec.Code != 200 {
			f.Fatalf("%s: %d %s", path, rec.Code, rec.Body.Bytes())
		}
		var data map[string]any
		json.Unmarshal(env.Data, &data)
		return data
	}
	ft.login(f)
	bearer := "Bearer " + ft.token
	ft.queue = call("/queues.get_default", "", bearer)["id"].(string)
	ft.task = call("/tasks.create", `{"name": "fuzz task", "type": "training", "script": {"entry_point": "a.py"}}`, bearer)["id"].(string)
	ft.model = call("/models.create", `{"name": "fuzz model", "uri": "file:///m.pkl", "task": "`+ft.task+`"}`, bearer)["id"].(string)
	return ft
}

// Flags of a fuzz input (the last argument).
const (
	fuzzAuthMask   = 0x7  // which Authorization to send, see authFor
	fuzzGzip       = 0x8  // send Content-Encoding: gzip
	fuzzPost       = 0x10 // POST instead of GET
	fuzzTrx        = 0x20 // send X-ClearML-Trx
	fuzzIdentity   = 0x40 // send Content-Encoding: identity
	fuzzWorkerHdrs = 0x80 // send the worker/client headers
)

func (ft *fuzzTarget) authFor(flags uint8) string {
	token := ft.bearer()
	switch flags & fuzzAuthMask {
	case 0:
		return "Bearer " + token
	case 1:
		return basicAuth(ft.creds.AccessKey, ft.creds.SecretKey)
	case 2:
		return ""
	case 3:
		return "Bearer " + token[:len(token)-2] + "xx"
	case 4:
		return "Basic %%%"
	case 5:
		return basicAuth(ft.creds.AccessKey, "wrong")
	case 6:
		return "Token " + token
	default:
		return "bearer   " + token + "  "
	}
}

// serve sends one fuzz input and checks the invariants every answer keeps.
func (ft *fuzzTarget) serve(t *testing.T, path, query string, body []byte, contentType string, flags uint8) {
	method := "GET"
	if flags&fuzzPost != 0 {
		method = "POST"
	}
	// NewRequest on a fixed target cannot panic; the fuzzed parts go into
	// the parsed URL directly, as the HTTP server would have set them.
	// "$T" and "$Q" stand for the fuzz task and the default queue, so that
	// mutated bodies keep naming real objects.
	body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("$T"), []byte(ft.task)), []byte("$Q"), []byte(ft.queue))
	body = bytes.ReplaceAll(body, []byte("$M"), []byte(ft.model))
	if strings.Contains(path, "auth.logout") {
		// The input may end the fuzzer's session; the next ones get a new one.
		defer ft.login(t)
	}
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	req.URL.Path, req.URL.RawQuery = path, query
	req.RequestURI = path
	if query != "" {
		req.RequestURI += "?" + query
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a := ft.authFor(flags); a != "" {
		req.Header.Set("Authorization", a)
	}
	encoded := flags&fuzzGzip != 0
	if encoded {
		req.Header.Set("Content-Encoding", "gzip")
	} else if flags&fuzzIdentity != 0 {
		req.Header.Set("Content-Encoding", "identity")
	}
	if flags&fuzzTrx != 0 {
		req.Header.Set("X-ClearML-Trx", "fuzz-trx")
	}
	if flags&fuzzWorkerHdrs != 0 {
		req.Header.Set("X-ClearML-Worker", "fuzzhost")
		req.Header.Set("X-ClearML-Client", "clearml-2.1.7")
	}
	// Long polls (queues.get_next_task with wait_ms) end when the client
	// goes away; keep them short.
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	rec := httptest.NewRecorder()
	ft.srv.ServeHTTP(rec, req)

	what := method + " " + strconv.Quote(path) + " ?" + strconv.Quote(query)
	raw := rec.Body.Bytes()
	if rec.Code == http.StatusUnsupportedMediaType {
		if !encoded {
			t.Fatalf("%s: 415 without Content-Encoding: %s", what, raw)
		}
		if string(raw) != "Content encoding is not supported\n" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: 415 body %q, Content-Type %q", what, raw, rec.Header().Get("Content-Type"))
		}
		return
	}
	var env struct {
		Meta *api.Meta      `json:"meta"`
		Data map[string]any `json:"data"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	if err := d.Decode(&env); err != nil || env.Meta == nil || env.Data == nil || d.More() {
		t.Fatalf("%s: HTTP %d, not an envelope with object data (%v): %q", what, rec.Code, err, raw)
	}
	m := env.Meta
	if rec.Code == 500 && ctx.Err() != nil {
		return // the request outlived its context; nobody reads that answer
	}
	switch rec.Code {
	case 200, 400, 401, 403, 404, 413:
	default:
		t.Fatalf("%s: HTTP %d (%d/%d %s)", what, rec.Code, m.ResultCode, m.ResultSubcode, m.ResultMsg)
	}
	if m.ResultCode != rec.Code {
		t.Fatalf("%s: HTTP %d != result_code %d", what, rec.Code, m.ResultCode)
	}
	if !hex32.MatchString(m.ID) {
		t.Fatalf("%s: meta.id %q", what, m.ID)
	}
	wantTrx := m.ID
	if flags&fuzzTrx != 0 {
		wantTrx = "fuzz-trx"
	}
	if m.Trx != wantTrx {
		t.Fatalf("%s: meta.trx %q, want %q", what, m.Trx, wantTrx)
	}
	if (rec.Code == 200) != (m.ResultMsg == "OK" && m.ResultSubcode == 0) || m.ResultMsg == "" {
		t.Fatalf("%s: HTTP %d with %d/%q", what, rec.Code, m.ResultSubcode, m.ResultMsg)
	}
	if m.ErrorData == nil {
		t.Fatalf("%s: error_data is not an object", what)
	}
	if bytes.Contains(raw, []byte(ft.creds.SecretKey)) && !bytes.Contains(body, []byte(ft.creds.SecretKey)) {
		t.Fatalf("%s: the answer carries the secret key", what)
	}
}

// FuzzRequest feeds arbitrary paths, queries, bodies and headers through
// the real server and checks that every answer is a well-formed envelope
// (or the documented plain-text 415) and never a 5xx.
func FuzzRequest(f *testing.F) {
	ft := newFuzzTarget(f)
	for _, s := range fuzzSeeds(f, ft) {
		f.Add(s.path, s.query, s.body, s.contentType, s.flags)
	}
	f.Fuzz(func(t *testing.T, path, query string, body []byte, contentType string, flags uint8) {
		ft.serve(t, path, query, body, contentType, flags)
	})
}

// fuzzEndpoints are the served endpoints, plus one the server lacks.
var fuzzEndpoints = []string{"auth.login", "auth.logout", "debug.ping", "server.info", "users.get_current_user",
	"projects.create", "projects.get_all", "projects.get_by_id", "projects.update", "queues.create", "queues.get_all",
	"queues.get_by_id", "queues.get_default", "queues.update", "queues.delete", "queues.add_task", "queues.remove_task",
	"queues.get_next_task", "queues.peek_task", "queues.get_num_entries", "tasks.create", "tasks.get_by_id",
	"tasks.get_all", "tasks.edit", "tasks.update", "tasks.started", "tasks.stopped", "tasks.failed", "tasks.completed",
	"tasks.close", "tasks.publish", "tasks.stop", "tasks.enqueue", "tasks.dequeue", "tasks.reset", "tasks.ping",
	"tasks.set_requirements", "tasks.clone", "tasks.delete", "tasks.archive", "tasks.get_hyper_params",
	"tasks.edit_hyper_params", "tasks.delete_hyper_params", "tasks.get_configurations", "tasks.get_configuration_names",
	"tasks.edit_configuration", "tasks.delete_configuration", "tasks.add_or_update_artifacts", "tasks.delete_artifacts",
	"workers.register", "workers.unregister", "workers.status_report", "workers.get_all", "events.add",
	"events.add_batch", "events.get_task_log", "events.get_task_events", "events.scalar_metrics_iter_histogram",
	"events.get_scalar_metrics_and_variants", "events.delete_for_task", "workers.get_runtime_properties",
	"workers.set_runtime_properties", "tasks.add_or_update_model", "tasks.delete_models", "models.create",
	"models.get_by_id", "models.get_all", "models.edit", "models.update", "models.update_for_task", "models.set_ready",
	"models.publish_many", "models.delete", "models.delete_many", "models.add_or_update_metadata",
	"models.delete_metadata", "events.get_task_plots", "events.debug_images", "workers.cluster_report"}

// FuzzEndpoint is FuzzRequest aimed at the handlers: the path is always a
// served endpoint (at a version from 2.0 to 2.40, or unversioned), so the
// fuzzer spends its time on bodies.
func FuzzEndpoint(f *testing.F) {
	ft := newFuzzTarget(f)
	index := map[string]uint8{}
	for i, e := range fuzzEndpoints {
		index[e] = uint8(i)
	}
	for _, s := range fuzzSeeds(f, ft) {
		if i, ok := index[s.path[strings.LastIndex(s.path, "/")+1:]]; ok && s.query == "" {
			f.Add(i, uint8(255), s.body, s.flags)
		}
	}
	f.Fuzz(func(t *testing.T, endpoint, version uint8, body []byte, flags uint8) {
		path := "/" + fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		if version <= 40 {
			path = "/v2." + strconv.Itoa(int(version)) + path
		}
		ft.serve(t, path, "", body, "application/json", flags&^fuzzGzip)
	})
}

// FuzzQueryMerge checks the query-to-body merge (spec 1.3) through
// debug.ping, which echoes the merged body to a signed-in caller: every plain key comes back with
// the reference's number/boolean conversion, and the query wins over the body.
func FuzzQueryMerge(f *testing.F) {
	ft := newFuzzTarget(f)
	f.Add("i=12&f=1.5&t=true&s=abc&z=007", []byte(`{"i": "body", "keep": 1}`))
	f.Add("a.b=1&a=2&l[]=x&rep=1&rep=2", []byte(``))
	f.Add("x=1.2.3&y=.&n=-1&e=&big=99999999999999999999&bf=1.99999999999999999999999999", []byte(`{}`))
	f.Add("%zz=1&ok=TRUE&F=False", []byte(`{"ok": false}`))
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		req.URL.Path, req.URL.RawQuery = "/debug.ping", query
		req.Header.Set("Authorization", "Bearer "+ft.token) // signed in: the body and query are echoed
		rec := httptest.NewRecorder()
		ft.srv.ServeHTTP(rec, req)
		var env struct {
			Meta api.Meta                   `json:"meta"`
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Data == nil || env.Meta.ResultCode != rec.Code {
			t.Fatalf("query %q: HTTP %d, bad envelope (%v): %s", query, rec.Code, err, rec.Body.Bytes())
		}
		trimmed := bytes.TrimSpace(body)
		validBody := len(trimmed) == 0 || (trimmed[0] == '{' && json.Valid(trimmed))
		if validBody != (rec.Code == 200) {
			t.Fatalf("query %q body %q: HTTP %d %s", query, body, rec.Code, env.Meta.ResultMsg)
		}
		if rec.Code != 200 {
			return
		}
		values, _ := url.ParseQuery(query)
		for key, vs := range values {
			if key == "msg" || len(vs) != 1 || strings.Contains(key, ".") || strings.HasSuffix(key, "[]") {
				continue
			}
			if shadowedQueryKey(values, key) {
				continue // another key also writes this one; the merge order decides
			}
			got, ok := env.Data[jsonString(key)]
			if !ok {
				t.Fatalf("query %q: key %q missing from %v", query, key, env.Data)
			}
			if want := expectedQueryValue(vs[0]); !sameJSONValue(got, want) {
				t.Fatalf("query %q: %q echoed as %s, want %s", query, key, got, want)
			}
		}
	})
}

// expectedQueryValue is spec 1.3's conversion of a query value, as JSON.
func expectedQueryValue(s string) string {
	switch s {
	case "true", "True", "TRUE":
		return "true"
	case "false", "False", "FALSE":
		return "false"
	}
	digits := s != "" && s != "." && strings.Trim(s, "0123456789.") == "" && strings.Count(s, ".") <= 1
	if digits && !strings.Contains(s, ".") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
	} else if digits {
		if x, err := strconv.ParseFloat(s, 64); err == nil {
			b, _ := json.Marshal(x)
			return string(b)
		}
	}
	b, _ := json.Marshal(strings.ReplaceAll(s, "\x00", "\uFFFD"))
	return string(b)
}

func sameJSONValue(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return mustJSON(a) == mustJSON(b)
}

// shadowedQueryKey reports whether another query key also sets key: "key[]"
// or a dotted "key.x".
// Keys are compared as JSON carries them (invalid UTF-8 becomes U+FFFD).
func shadowedQueryKey(values url.Values, key string) bool {
	want := jsonString(key)
	for raw := range values {
		if raw == key {
			continue
		}
		k := jsonString(strings.TrimSuffix(raw, "[]"))
		if k == want || strings.Contains(k, ".") && strings.Split(k, ".")[0] == want {
			return true
		}
	}
	return false
}

// jsonString returns s as it reads back from JSON, after the server's
// replacement of NUL by U+FFFD (see replaceNULEscapes).
func jsonString(s string) string {
	var out string
	json.Unmarshal([]byte(mustJSON(strings.ReplaceAll(s, "\x00", "\uFFFD"))), &out)
	return out
}
