package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestServerOutageLosesNoLine stops the server for 60 s in the middle of a
// task that logs 10,000 lines and ends during the outage: every line
// arrives once the server is back, once and in order, and the task gets
// its final status then.
func TestServerOutageLosesNoLine(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 70 s: the server is down for 60 s")
	}
	t.Parallel()
	e := newEnv(t)
	const lines = 10000
	d := e.daemon("--queue", "default")
	id := e.task("chatty", "", fmt.Sprintf("import time\nfor i in range(%d):\n    print('chat', i)\n    time.sleep(0.004)\n", lines))
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(strings.Join(e.logLines(id), "\n"), "chat 10") {
		if time.Now().After(deadline) {
			t.Fatalf("task did not start\n%s", d.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Second)
	e.srv = restartServer(t, e)
	done := e.waitStatus(id, 90*time.Second, "completed", "failed", "stopped")
	if done.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", done.Status, done.StatusReason, d.Output())
	}
	// Log delivery may finish just after the final status.
	var got []string
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
		got = got[:0]
		for _, l := range e.logLines(id) {
			if strings.HasPrefix(l, "chat ") {
				got = append(got, l)
			}
		}
		if len(got) >= lines {
			break
		}
	}
	if len(got) != lines {
		t.Fatalf("got %d lines, want %d", len(got), lines)
	}
	for i, l := range got {
		if l != fmt.Sprintf("chat %d", i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
}
