package apiclient_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/server"
)

func TestRetries(t *testing.T) {
	t.Parallel()
	type failure func(t *testing.T, w http.ResponseWriter)
	envelope := func(code int) failure {
		return func(t *testing.T, w http.ResponseWriter) { writeEnvelope(w, code, 0, "server trouble") }
	}
	plain := func(code int, body string) failure {
		return func(t *testing.T, w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			w.Write([]byte(body))
		}
	}
	tests := []struct {
		name      string
		fail      failure
		failures  int
		policy    apiclient.Policy
		wantCalls int // 0: at least failures+1
		// check inspects the error; nil means the call must succeed.
		check func(t *testing.T, err error)
	}{
		{name: "503 envelope", fail: envelope(503), failures: 2, policy: apiclient.Default, wantCalls: 3},
		{name: "502 proxy page", fail: plain(502, "<html>Bad Gateway</html>"), failures: 2, policy: apiclient.Default, wantCalls: 3},
		{name: "504 plain", fail: plain(504, "gateway timeout"), failures: 1, policy: apiclient.Default, wantCalls: 2},
		{name: "429", fail: plain(429, "slow down"), failures: 1, policy: apiclient.Default, wantCalls: 2},
		{name: "500 proxy page", fail: plain(500, "<html>Internal Server Error</html>"), failures: 1, policy: apiclient.Default, wantCalls: 2},
		{name: "closed connection", fail: closeConn, failures: 2, policy: apiclient.Default},
		{name: "500 envelope is a server bug", fail: envelope(500), failures: 1, policy: apiclient.Default, wantCalls: 1,
			check: func(t *testing.T, err error) {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != 500 || apiclient.IsRetryable(err) {
					t.Errorf("error = %v, want a non-retryable *api.Error 500", err)
				}
			}},
		{name: "400 is final", fail: func(t *testing.T, w http.ResponseWriter) { writeEnvelope(w, 400, 12, "Validation error") },
			failures: 1, policy: apiclient.Default, wantCalls: 1,
			check: func(t *testing.T, err error) {
				if !api.ErrValidation.Is(err) || apiclient.IsRetryable(err) || errors.Is(err, apiclient.ErrUnreachable) {
					t.Errorf("error = %v, want a non-retryable 400/12", err)
				}
				if !strings.HasPrefix(err.Error(), "calling queues.get_default: ") {
					t.Errorf("error %q lacks the endpoint prefix", err)
				}
			}},
		{name: "budget exhausted", fail: envelope(503), failures: 100, policy: apiclient.Policy{MaxAttempts: 3}, wantCalls: 3,
			check: func(t *testing.T, err error) {
				var ue *apiclient.UnreachableError
				if !errors.As(err, &ue) || ue.Attempts != 3 || !errors.Is(err, apiclient.ErrUnreachable) || !apiclient.IsRetryable(err) {
					t.Fatalf("error = %v, want an UnreachableError after 3 attempts", err)
				}
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != 503 {
					t.Errorf("UnreachableError does not wrap the last 503: %v", err)
				}
			}},
		{name: "status disagrees with result_code", failures: 1, policy: apiclient.Default, wantCalls: 1,
			fail: func(t *testing.T, w http.ResponseWriter) {
				w.WriteHeader(200)
				w.Write([]byte(`{"meta":{"result_code":400,"result_msg":"nope"},"data":{}}`))
			},
			check: func(t *testing.T, err error) {
				var he *apiclient.HTTPError
				if !errors.As(err, &he) || !strings.Contains(err.Error(), "result_code 400 disagrees with the HTTP status") {
					t.Errorf("error = %v, want an HTTPError about the mismatch", err)
				}
			}},
		{name: "200 without envelope", fail: plain(200, "hello from a proxy"), failures: 1, policy: apiclient.Default, wantCalls: 1,
			check: func(t *testing.T, err error) {
				var he *apiclient.HTTPError
				if !errors.As(err, &he) || he.StatusCode != 200 || !strings.Contains(err.Error(), "hello from a proxy") {
					t.Errorf("error = %v, want an HTTPError naming the status and the body", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
				if ep == "queues.get_default" && n <= tt.failures {
					tt.fail(t, w)
					return true
				}
				return false
			})
			var mu sync.Mutex
			var slept []time.Duration
			c := e.client(func(cfg *apiclient.Config) {
				cfg.Sleep = func(ctx context.Context, d time.Duration) error {
					mu.Lock()
					slept = append(slept, d)
					mu.Unlock()
					return ctx.Err()
				}
			})
			var resp struct{ ID string }
			err := c.Call(t.Context(), "2.5", "queues.get_default", struct{}{}, &resp, tt.policy)
			if tt.check == nil {
				if err != nil || resp.ID == "" {
					t.Fatalf("Call = %v (id %q), want success", err, resp.ID)
				}
			} else {
				if err == nil {
					t.Fatal("Call succeeded, want an error")
				}
				tt.check(t, err)
			}
			calls := e.count("queues.get_default")
			if (tt.wantCalls != 0 && calls != tt.wantCalls) || (tt.wantCalls == 0 && calls < tt.failures+1) {
				t.Errorf("requests = %d, want %d (failures %d)", calls, tt.wantCalls, tt.failures)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range slept {
				if d < 0 || d > apiclient.Default.MaxBackoff {
					t.Errorf("backoff %v outside [0, %v]", d, apiclient.Default.MaxBackoff)
				}
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "queues.get_default" && n == 1 {
			w.Header().Set("Retry-After", "3")
			writeEnvelope(w, 503, 0, "maintenance")
			return true
		}
		return false
	})
	clock := newFakeClock()
	c := e.client(func(cfg *apiclient.Config) { cfg.Now, cfg.Sleep = clock.Now, clock.Sleep })
	start := clock.Now()
	if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(start); waited < 3*time.Second {
		t.Errorf("waited %v before retrying, want at least the Retry-After of 3s", waited)
	}
}

func TestMaxElapsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "queues.get_default" {
			writeEnvelope(w, 503, 0, "maintenance")
			return true
		}
		return false
	})
	clock := newFakeClock()
	c := e.client(func(cfg *apiclient.Config) { cfg.Now, cfg.Sleep = clock.Now, clock.Sleep })
	p := apiclient.Policy{MaxElapsed: 10 * time.Second, InitialBackoff: time.Second, MaxBackoff: 4 * time.Second}
	start := clock.Now()
	err := c.Call(t.Context(), "2.5", "queues.get_default", nil, nil, p)
	var ue *apiclient.UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("error = %v, want UnreachableError", err)
	}
	if spent := clock.Now().Sub(start); spent > 10*time.Second || ue.Elapsed > 10*time.Second {
		t.Errorf("spent %v (reported %v), want at most the 10s budget", spent, ue.Elapsed)
	}
	if ue.Attempts < 3 || ue.Attempts != e.count("queues.get_default") {
		t.Errorf("attempts = %d, requests = %d, want equal and at least 3", ue.Attempts, e.count("queues.get_default"))
	}
}

func TestServerDown(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c, err := apiclient.New(apiclient.Config{Server: dead.URL, AccessKey: "K", SecretKey: "S",
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetNextTask(t.Context(), "q", 0)
	var ue *apiclient.UnreachableError
	if !errors.As(err, &ue) || ue.Attempts != apiclient.Poll.MaxAttempts || !apiclient.IsRetryable(err) {
		t.Fatalf("error = %v, want UnreachableError after %d attempts", err, apiclient.Poll.MaxAttempts)
	}
	if !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), dead.URL) {
		t.Errorf("error %q does not say which server is unreachable", err)
	}
}

func TestContextEndsRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "queues.get_default" {
			writeEnvelope(w, 503, 0, "maintenance")
			return true
		}
		return false
	})
	ctx, cancel := context.WithCancel(t.Context())
	c := e.client(func(cfg *apiclient.Config) {
		cfg.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	})
	err := c.Call(ctx, "2.5", "queues.get_default", nil, nil, apiclient.Final)
	if !errors.Is(err, context.Canceled) || errors.Is(err, apiclient.ErrUnreachable) || apiclient.IsRetryable(err) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "last error") {
		t.Errorf("error %q does not carry the last failure", err)
	}
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "queues.get_default" && n == 1 {
			select { // hang until the client gives up on this attempt
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return true
		}
		return false
	})
	c := e.client(func(cfg *apiclient.Config) { cfg.RequestTimeout = 200 * time.Millisecond })
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
		t.Fatalf("GetDefaultQueue after a timed-out attempt: %v", err)
	}
	if got := e.count("queues.get_default"); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		switch {
		case ep == "queues.get_default" && n <= 2:
			writeEnvelope(w, 503, 0, "maintenance")
			return true
		case ep == "queues.get_default" && n == 3:
			writeEnvelope(w, 401, 30, "Invalid token")
			return true
		case ep == "tasks.ping":
			closeConn(t, w)
			return true
		}
		return false
	})
	var buf bytes.Buffer
	var bufMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &bufMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := e.client(func(cfg *apiclient.Config) { cfg.Logger = logger })
	var errs []error
	errs = append(errs, c.Login(t.Context()))
	_, _, err := c.GetDefaultQueue(t.Context())
	errs = append(errs, err, c.Ping(t.Context(), "some-task"))
	bad := e.client(func(cfg *apiclient.Config) { cfg.Logger, cfg.SecretKey = logger, e.Creds.SecretKey+"x" })
	errs = append(errs, bad.Login(t.Context()))

	bufMu.Lock()
	logs := buf.String()
	bufMu.Unlock()
	if !strings.Contains(logs, "retrying") || !strings.Contains(logs, "queues.get_default") {
		t.Errorf("retries were not logged:\n%s", logs)
	}
	secrets := []string{e.Creds.SecretKey, base64.StdEncoding.EncodeToString([]byte(e.Creds.AccessKey + ":" + e.Creds.SecretKey))}
	for _, r := range e.all() {
		if a := r.Header.Get("Authorization"); a != "" {
			_, v, _ := strings.Cut(a, " ")
			secrets = append(secrets, v)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains a secret (%.6s...):\n%s", s, logs)
		}
		for _, err := range errs {
			if err != nil && strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains a secret", err)
			}
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 5000)
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		switch ep {
		case "debug.long":
			w.WriteHeader(403)
			w.Write([]byte(long))
			return true
		case "debug.forbidden":
			writeEnvelope(w, 403, 20, "Role not allowed")
			return true
		}
		return false
	})
	c := e.client(nil)
	tests := []struct {
		name, version, endpoint string
		check                   func(err error) bool
		wantRequests            int
	}{
		{name: "unknown endpoint", endpoint: "workers.cluster_report", check: apiclient.IsUnknownEndpoint, wantRequests: 1},
		{name: "forbidden", endpoint: "debug.forbidden", check: apiclient.IsForbidden, wantRequests: 1},
		{name: "long body", endpoint: "debug.long", wantRequests: 1, check: func(err error) bool {
			return apiclient.IsForbidden(err) && len(err.Error()) < 400 && strings.Contains(err.Error(), "xxx...")
		}},
		{name: "bad endpoint name", endpoint: "tasks", check: func(err error) bool { return strings.Contains(err.Error(), "service.action") }},
		{name: "bad version", version: "2.x", endpoint: "tasks.get_all", check: func(err error) bool { return strings.Contains(err.Error(), "invalid API version") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.Call(t.Context(), tt.version, tt.endpoint, nil, nil, apiclient.Default)
			if err == nil || !tt.check(err) || apiclient.IsRetryable(err) {
				t.Errorf("error = %v", err)
			}
			if got := e.count(tt.endpoint); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

// An enqueue whose answer was lost after the server queued the task is
// retried, and the retry's "already in queue" means the first worked: the
// call succeeds, and the task is queued once. A first attempt that says
// "already in queue" is the caller's mistake and is returned.
func TestEnqueueRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	var srv http.Handler
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, endpoint string, n int) bool {
		if endpoint != "tasks.enqueue" || n != 1 {
			return false
		}
		// Queue the task for real, then drop the connection unanswered.
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Errorf("first enqueue answered %d: %s", rec.Code, rec.Body)
		}
		closeConn(t, w)
		return true
	})
	srv = e.handler
	c := e.client(nil)
	ctx := context.Background()
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": "lost answer", "type": "testing"}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": "default"}, nil, apiclient.Default); err != nil {
		t.Fatalf("enqueue after a lost answer: %v", err)
	}
	if n := e.count("tasks.enqueue"); n != 2 {
		t.Fatalf("enqueue requests = %d, want 2", n)
	}
	if tk, err := c.Task(ctx, created.ID); err != nil || tk.Status != api.StatusQueued {
		t.Fatalf("task = %v, %v; want queued", tk, err)
	}
	// Asked again by the caller (a first attempt), it is an error.
	err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": "default"}, nil, apiclient.Default)
	if !api.ErrTaskAlreadyQueued.Is(err) {
		t.Fatalf("a second enqueue = %v, want 706", err)
	}
}
