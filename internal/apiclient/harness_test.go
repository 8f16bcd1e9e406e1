package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

// hookFunc sees every request before our real server does. n counts the
// requests to the same endpoint, from 1. Returning true means the hook
// answered and the server is skipped.
type hookFunc func(w http.ResponseWriter, r *http.Request, endpoint string, n int) bool

// env is our real server on SQLite over real HTTP, behind a counting and
// recording wrapper.
type env struct {
	t     *testing.T
	URL   string
	Store store.Store
	Creds server.Credentials

	// handler is our real server, for a hook that passes a request on.
	handler http.Handler

	mu       sync.Mutex
	counts   map[string]int
	requests []recorded
}

// recorded is one request as the server saw it.
type recorded struct {
	Endpoint string
	Method   string
	Path     string
	Header   http.Header
	Body     []byte
}

var versionPrefix = regexp.MustCompile(`^/(v\d+\.\d+/)?`)

func endpointOf(path string) string {
	return strings.TrimSuffix(versionPrefix.ReplaceAllString(path, ""), "/")
}

func newEnv(t *testing.T, opts server.Options, hook hookFunc) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "clearml.db"))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := server.Bootstrap(ctx, st); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	srv, err := server.New(st, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	creds, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	e := &env{t: t, Store: st, Creds: creds, counts: map[string]int{}, handler: srv}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ep := endpointOf(r.URL.Path)
		e.mu.Lock()
		e.counts[ep]++
		n := e.counts[ep]
		e.requests = append(e.requests, recorded{Endpoint: ep, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		e.mu.Unlock()
		if hook != nil && hook(w, r, ep, n) {
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	e.URL = hs.URL
	return e
}

// count returns how many requests endpoint got.
func (e *env) count(endpoint string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[endpoint]
}

// last returns the last request to endpoint.
func (e *env) last(endpoint string) recorded {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.requests) - 1; i >= 0; i-- {
		if e.requests[i].Endpoint == endpoint {
			return e.requests[i]
		}
	}
	e.t.Fatalf("no request to %s", endpoint)
	return recorded{}
}

// all returns every request so far.
func (e *env) all() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.requests...)
}

// config is a client configuration for e with instant retries.
func (e *env) config() apiclient.Config {
	return apiclient.Config{
		Server: e.URL + "/", AccessKey: e.Creds.AccessKey, SecretKey: e.Creds.SecretKey,
		WorkerName: "testhost", UserAgent: "api-test",
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() },
	}
}

// client returns a client for e, with cfg adjusted by mod.
func (e *env) client(mod func(*apiclient.Config)) *apiclient.Client {
	e.t.Helper()
	cfg := e.config()
	if mod != nil {
		mod(&cfg)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		e.t.Fatalf("apiclient.New: %v", err)
	}
	return c
}

// writeEnvelope answers like the server does, with an error.
func writeEnvelope(w http.ResponseWriter, code, subcode int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"meta": map[string]any{"id": "x", "trx": "x", "endpoint": map[string]any{"name": "x"},
			"result_code": code, "result_subcode": subcode, "result_msg": msg, "error_data": map[string]any{}},
		"data": map[string]any{},
	})
}

// closeConn drops the connection without an answer.
func closeConn(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

// fakeClock is a manual clock; its Sleep advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.Advance(d)
	return ctx.Err()
}

// createTask makes a task through the generic Call and returns its id.
func createTask(t *testing.T, c *apiclient.Client, name string) string {
	t.Helper()
	var resp struct {
		ID string `json:"id"`
	}
	req := map[string]any{"name": name, "type": "training",
		"script": map[string]any{"entry_point": "train.py", "repository": "https://example.com/r.git"}}
	if err := c.Call(t.Context(), "", "tasks.create", req, &resp, apiclient.Default); err != nil {
		t.Fatalf("tasks.create: %v", err)
	}
	return resp.ID
}

// enqueue puts a task into a queue through the generic Call.
func enqueue(t *testing.T, c *apiclient.Client, task, queue string) {
	t.Helper()
	if err := c.Call(t.Context(), "", "tasks.enqueue", map[string]any{"task": task, "queue": queue}, nil, apiclient.Default); err != nil {
		t.Fatalf("tasks.enqueue: %v", err)
	}
}
