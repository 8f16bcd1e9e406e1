package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Cleanup()
	testbin.Cleanup()
	os.Exit(code)
}

// backends lists the stores every contract test runs against.
var backends = []struct {
	name string
	open func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "clearml.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t) }},
}

// forEachBackend runs fn once per store back end, each with a fresh server.
func forEachBackend(t *testing.T, fn func(t *testing.T, c *client)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newTestServer(t, b.open(t), server.Options{}))
		})
	}
}

// testServer is a real server over real HTTP on a real database.
type testServer struct {
	URL   string
	Store store.Store
	Srv   *server.Server
	Creds server.Credentials
}

// client calls the API as a ClearML client does.
type client struct {
	t     *testing.T
	ts    *testServer
	token string
	// version is the URL version prefix ("" = unversioned).
	version string
	// worker is the X-ClearML-Worker header ("testhost" when empty).
	worker string
}

func openStore(t testing.TB, dsn string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := server.Bootstrap(context.Background(), st); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return st
}

func newTestServer(t *testing.T, dsn string, opts server.Options) *client {
	t.Helper()
	st := openStore(t, dsn)
	srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	creds, err := server.CreateCredentials(context.Background(), st, "")
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	ts := &testServer{URL: hs.URL, Store: st, Srv: srv, Creds: creds}
	c := &client{t: t, ts: ts}
	c.login()
	return c
}

func (c *client) login() {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.ts.URL+"/auth.login", nil)
	req.SetBasicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
	code, env := do(c.t, req)
	if code != 200 {
		c.t.Fatalf("login: %d %s", code, env.Meta.ResultMsg)
	}
	var data api.LoginResponse
	json.Unmarshal(env.Data, &data)
	c.token = data.Token
}

// as returns a client that sends worker as its X-ClearML-Worker.
func (c *client) as(worker string) *client {
	cp := *c
	cp.worker = worker
	return &cp
}

// at returns a client that calls /vX.Y/ paths.
func (c *client) at(version string) *client {
	cp := *c
	cp.version = version
	return &cp
}

func do(t testing.TB, req *http.Request) (int, api.Envelope) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env api.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: response is not an envelope: %v: %s", req.URL.Path, err, raw)
	}
	if env.Meta.ResultCode != resp.StatusCode {
		t.Fatalf("%s: HTTP status %d != result_code %d", req.URL.Path, resp.StatusCode, env.Meta.ResultCode)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(env.Data), []byte("{")) {
		t.Fatalf("%s: data is not an object: %s", req.URL.Path, env.Data)
	}
	return resp.StatusCode, env
}

// raw sends body (a string or a value to encode) to endpoint with GET, as
// the clients do, and returns the envelope.
func (c *client) raw(endpoint string, body any) (int, api.Envelope) {
	c.t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case nil:
	default:
		b, _ = json.Marshal(v)
	}
	path := "/" + endpoint
	if c.version != "" {
		path = "/v" + c.version + path
	}
	req, _ := http.NewRequest("GET", c.ts.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	worker := c.worker
	if worker == "" {
		worker = "testhost"
	}
	req.Header.Set("X-ClearML-Worker", worker)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return do(c.t, req)
}

// ok calls endpoint and fails the test unless it succeeds.
func (c *client) ok(endpoint string, body any) map[string]any {
	c.t.Helper()
	code, env := c.raw(endpoint, body)
	if code != 200 {
		c.t.Fatalf("%s: %d/%d %s", endpoint, code, env.Meta.ResultSubcode, env.Meta.ResultMsg)
	}
	var m map[string]any
	json.Unmarshal(env.Data, &m)
	return m
}

// fail calls endpoint and checks it fails with code/subcode.
func (c *client) fail(endpoint string, body any, code, subcode int) api.Meta {
	c.t.Helper()
	got, env := c.raw(endpoint, body)
	if got != code || env.Meta.ResultSubcode != subcode {
		c.t.Fatalf("%s: got %d/%d (%s), want %d/%d", endpoint, got, env.Meta.ResultSubcode, env.Meta.ResultMsg, code, subcode)
	}
	if env.Meta.ResultMsg == "" {
		c.t.Fatalf("%s: error without a message", endpoint)
	}
	return env.Meta
}

// createTask makes a task and returns its id.
func (c *client) createTask(name string) string {
	c.t.Helper()
	return c.ok("tasks.create", map[string]any{"name": name, "type": "training",
		"script": map[string]any{"entry_point": "train.py", "repository": "https://example.com/r.git"}})["id"].(string)
}

func (c *client) task(id string) map[string]any {
	c.t.Helper()
	return c.ok("tasks.get_by_id", map[string]any{"task": id})["task"].(map[string]any)
}

func (c *client) defaultQueue() string {
	c.t.Helper()
	return c.ok("queues.get_default", nil)["id"].(string)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	testwait.Until(t, d, cond, what)
}

var _ = strings.TrimSpace
