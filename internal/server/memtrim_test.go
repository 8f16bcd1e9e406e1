package server_test

import (
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/memtrim/memtrimtest"
	"github.com/goclearml/agent/internal/testbin"
)

// TestSettledServerGivesBackStartupPages: once up for a while, a server
// process no longer holds the pages of the binary its start touched, and
// serves as before.
func TestSettledServerGivesBackStartupPages(t *testing.T) {
	t.Parallel()
	s := testbin.StartServer(t, t.TempDir())
	pc := newProcClient(t, s)
	memtrimtest.WaitSettled(t, s.Pid(), 2*time.Minute)
	var created api.IDResponse
	if err := pc.call("tasks.create", map[string]any{"name": "after settling", "type": "training"}, &created); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := pc.call("tasks.get_by_id", map[string]any{"task": created.ID}, &got); err != nil {
		t.Fatal(err)
	}
	if task, _ := got["task"].(map[string]any); task == nil || task["name"] != "after settling" {
		t.Fatalf("tasks.get_by_id = %v", got)
	}
}
