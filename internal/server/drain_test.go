package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/server"
)

// Drain, the first step of a shutdown, fails /healthz (a load balancer
// then sends new requests elsewhere) and ends a waiting long poll at once,
// empty, instead of holding the shutdown for the poll's whole wait.
func TestDrainEndsLongPollsAndFailsHealth(t *testing.T) {
	t.Parallel()
	c := newTestServer(t, filepath.Join(t.TempDir(), "clearml.db"), server.Options{})
	health := httptest.NewServer(server.HealthHandler(c.ts.Srv, c.ts.Store, c.ts.Srv.Draining))
	defer health.Close()
	if code, body, err := healthz(health.URL); err != nil || code != 200 {
		t.Fatalf("/healthz before the drain = %d %q %v", code, body, err)
	}
	answer := parkLongPoll(t, c, c.defaultQueue(), 60000)
	c.ts.Srv.Drain()
	got, waited := answer()
	if len(got) != 0 || waited > 30*time.Second {
		t.Fatalf("long poll during the drain = %v after %v, want {} at once", got, waited)
	}
	if code, body, err := healthz(health.URL); err != nil || code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("/healthz during the drain = %d %q %v, want 503 shutting down", code, body, err)
	}
}

// With PostgreSQL gone, API calls are answered at once with 503 and a
// Retry-After (a client or load balancer tries again, perhaps through
// another replica), not 500, which clients give up on.
func TestDatabaseOutageAnswers503(t *testing.T) {
	t.Parallel()
	if _, err := pgtest.FindBinDir(); err != nil {
		t.Skipf("PostgreSQL is not installed (%v): the test stops a database of its own", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgtest.Start(ctx) // its own: the test stops it
	if err != nil {
		if errors.Is(err, pgtest.ErrNotInstalled) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer cluster.Stop()
	dsn, err := cluster.CreateDatabase(ctx, "outage")
	if err != nil {
		t.Fatal(err)
	}
	c := newTestServer(t, dsn, server.Options{})
	c.ok("tasks.get_all", map[string]any{"page_size": 1})
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, endpoint := range []string{"tasks.get_all", "tasks.create"} {
		start := time.Now()
		body := map[string]any{"page_size": 1}
		if endpoint == "tasks.create" {
			body = map[string]any{"name": "during the outage", "type": "testing"}
		}
		req, _ := http.NewRequest("POST", c.ts.URL+"/"+endpoint, strings.NewReader(mustJSON(body)))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || time.Since(start) > 10*time.Second {
			t.Errorf("%s with the database stopped: %d (Retry-After %q) after %v, want 503 with Retry-After at once",
				endpoint, resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start))
		}
	}
}
