package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
)

// TestWatchdogAndWorkerExpiry: in-progress tasks not updated for the
// threshold are stopped ("Forced stop (non-responsive)"), pinged ones are
// not; worker entries vanish 600 s after their last report.
func TestWatchdogAndWorkerExpiry(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := &testClock{now: time.Now().UTC()}
			c := newTestServer(t, b.open(t), server.Options{Now: clock.Now, TokenTTL: 365 * 24 * time.Hour})
			silent, alive := c.createTask("silent task"), c.createTask("pinged task")
			for _, id := range []string{silent, alive} {
				c.ok("tasks.started", map[string]any{"task": id, "force": true})
			}
			c.ok("workers.register", map[string]any{"worker": "host:0"})
			clock.Advance(time.Hour + 59*time.Minute)
			c.ok("tasks.ping", map[string]any{"task": alive})
			c.ok("workers.status_report", map[string]any{"worker": "other:0", "timestamp": 1})
			clock.Advance(2 * time.Minute) // silent: 2 h 1 min without an update
			n, err := c.ts.Srv.StopStaleTasks(context.Background(), 2*time.Hour)
			if err != nil || n != 1 {
				t.Fatalf("StopStaleTasks = %d, %v; want 1", n, err)
			}
			if tk := c.task(silent); tk["status"] != "stopped" || tk["status_reason"] != "Forced stop (non-responsive)" {
				t.Fatalf("silent task = %v %v", tk["status"], tk["status_reason"])
			}
			if tk := c.task(alive); tk["status"] != "in_progress" {
				t.Fatalf("pinged task = %v", tk["status"])
			}
			// host:0 registered 2 h ago (expired after 600 s); other:0 reported 2 min ago.
			workers := c.ok("workers.get_all", map[string]any{"last_seen": 0})["workers"].([]any)
			if len(workers) != 1 || workers[0].(map[string]any)["id"] != "other:0" {
				t.Fatalf("workers = %v", workers)
			}
			clock.Advance(9 * time.Minute)
			if w := c.ok("workers.get_all", map[string]any{"last_seen": 0})["workers"].([]any); len(w) != 0 {
				t.Fatalf("worker outlived its 600 s timeout: %v", w)
			}
		})
	}
}
