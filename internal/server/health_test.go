package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// healthz reads /healthz with a client that gives up after 10 s.
func healthz(url string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// /healthz says ready while the database answers, and not ready, at once,
// while it hangs; ready again when it is back.
func TestHealthz(t *testing.T) {
	t.Parallel()
	lite := testbin.StartServer(t, t.TempDir())
	if code, body, err := healthz(lite.URL); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("SQLite server /healthz = %d %q %v", code, body, err)
	}
	if _, err := pgtest.FindBinDir(); err != nil {
		t.Skipf("PostgreSQL is not installed (%v): the database half of the test needs it", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgtest.Start(ctx) // its own: the test freezes it
	if err != nil {
		if errors.Is(err, pgtest.ErrNotInstalled) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer cluster.Stop()
	dsn, err := cluster.CreateDatabase(ctx, "health")
	if err != nil {
		t.Fatal(err)
	}
	pg := testbin.StartServer(t, filepath.Join(t.TempDir(), "pg"), "--db", dsn)
	if code, _, err := healthz(pg.URL); err != nil || code != 200 {
		t.Fatalf("PostgreSQL server /healthz = %d %v", code, err)
	}
	thaw, err := cluster.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := healthz(pg.URL)
	thaw()
	if err != nil || code != 503 || !strings.Contains(body, "not ready: database") {
		t.Fatalf("/healthz with the database frozen = %d %q %v, want a prompt 503", code, body, err)
	}
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if code, _, _ := healthz(pg.URL); code == 200 {
			break
		}
		select {
		case <-deadline.C:
			t.Fatal("/healthz did not recover after the database came back")
		case <-tick.C:
		}
	}
}
