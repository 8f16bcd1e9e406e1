package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// TestPriorityVersusFairness: with two queues holding two tasks each, the
// default priority order empties the first queue first; --order-fairness
// alternates.
func TestPriorityVersusFairness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"priority", nil, "hi-1 hi-2 lo-1 lo-2"},
		{"fairness", []string{"--order-fairness"}, "hi-1 lo-1 hi-2 lo-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			order := filepath.Join(e.dir, "order")
			var ids []string
			for _, n := range []string{"hi-1", "hi-2", "lo-1", "lo-2"} {
				q := "high-queue"
				if strings.HasPrefix(n, "lo") {
					q = "low-queue"
				}
				ids = append(ids, e.task(n, q, fmt.Sprintf("open(%q, 'a').write(%q + ' ')\n", order, n)))
			}
			e.daemon(append([]string{"--queue", "high-queue", "low-queue"}, tc.args...)...)
			for _, id := range ids {
				e.waitStatus(id, 60*time.Second, "completed", "failed")
			}
			got, _ := os.ReadFile(order)
			if strings.TrimSpace(string(got)) != tc.want {
				t.Fatalf("run order %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServerOutageLosesNoLine stops the server in the middle of a task
// that logs 10,000 lines (40 s), until the task has ended: every line
// arrives once the server is back, once and in order, and the task gets
// its final status then.
func TestServerOutageLosesNoLine(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute: the server is down for most of the task's 40 s")
	}
	t.Parallel()
	e := newEnv(t)
	const lines = 10000
	d := e.daemon("--queue", "default")
	id := e.task("chatty", "", fmt.Sprintf("import time\nfor i in range(%d):\n    print('chat', i)\n    time.sleep(0.004)\n", lines))
	if !testwait.For(60*time.Second, func() bool { return strings.Contains(strings.Join(e.logLines(id), "\n"), "chat 10") }) {
		t.Fatalf("task did not start\n%s", d.Output())
	}
	if err := e.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// The task ends during the outage.
	testwait.Until(t, 5*time.Minute, func() bool { return len(processesOf(id)) == 0 }, "the task to end")
	e.srv = restartServer(t, e)
	done := e.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	if done.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", done.Status, done.StatusReason, d.Output())
	}
	// Log delivery may finish just after the final status.
	var got []string
	testwait.For(60*time.Second, func() bool {
		got = got[:0]
		for _, l := range e.logLines(id) {
			if strings.HasPrefix(l, "chat ") {
				got = append(got, l)
			}
		}
		return len(got) >= lines
	})
	if len(got) != lines {
		t.Fatalf("got %d lines, want %d", len(got), lines)
	}
	for i, l := range got {
		if l != fmt.Sprintf("chat %d", i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
}
