package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
)

// outsideNow is an uptime spec that does not contain the current hour.
func outsideNow() string {
	h := time.Now().Hour()
	return fmt.Sprintf("%d-%d SUN-SAT", (h+2)%24, (h+3)%24)
}

// TestUptimeWindowAndForceTag: outside its uptime window the daemon takes
// no task; tagging the queue force_workers:on makes it take it.
func TestUptimeWindowAndForceTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.daemon("--queue", "default", "--uptime", outsideNow())
	id := e.task("waits for its window", "", "print('ran')\n")
	time.Sleep(3 * time.Second)
	if tk := e.get(id); tk.Status != "queued" {
		t.Fatalf("task taken outside the uptime window: %s\n%s", tk.Status, d.Output())
	}
	if !strings.Contains(d.Output(), "outside the working schedule") {
		t.Fatalf("daemon did not say it is outside its schedule:\n%s", d.Output())
	}
	q := e.queueID("default")
	if err := e.api.Call(context.Background(), "", "queues.update", map[string]any{"queue": q, "tags": []string{"force_workers:on"}}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if tk := e.waitStatus(id, 30*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("forced task = %s", tk.Status)
	}
}

func (e *env) queueID(name string) string {
	e.t.Helper()
	qs, err := e.api.QueuesByName(context.Background(), name)
	if err != nil || len(qs) == 0 {
		e.t.Fatalf("queue %s: %v", name, err)
	}
	return qs[0].ID
}

func TestStatusAndScheduleErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code, out := e.run("daemon", "--queue", "default", "--uptime", "17-20 TUE", "0-6 MON", "--status")
	if code != 0 || !strings.Contains(out, "Working hours uptime configurations") || !strings.Contains(out, "0:00-5:59 on MON") ||
		!strings.Contains(out, "Listening to queue 'default'") {
		t.Fatalf("--status: exit %d\n%s", code, out)
	}
	code, out = e.run("daemon", "--queue", "default", "--uptime", "17-20 TUE", "--downtime", "1-2 MON")
	if code != 2 || !strings.Contains(out, "both --uptime and --downtime") {
		t.Fatalf("both given: exit %d\n%s", code, out)
	}
	code, out = e.run("daemon", "--queue", "default", "--uptime", "25-3 MON")
	if code != 2 || !strings.Contains(out, "hour 25") {
		t.Fatalf("bad spec: exit %d\n%s", code, out)
	}
}
