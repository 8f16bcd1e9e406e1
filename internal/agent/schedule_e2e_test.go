package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// outsideNow is an uptime spec that does not contain the current hour.
func outsideNow() string {
	h := time.Now().Hour()
	return fmt.Sprintf("%d-%d SUN-SAT", (h+2)%24, (h+3)%24)
}

// waitOutsideSchedule waits until the daemon said that it is outside its
// working schedule: it has then decided, in a polling pass made with the
// task already queued, not to take it. (The window is hours away: every
// later pass decides the same.)
func waitOutsideSchedule(t *testing.T, d *testbin.Process) {
	t.Helper()
	if !testwait.For(60*time.Second, func() bool { return strings.Contains(d.Output(), "outside the working schedule") }) {
		t.Fatalf("daemon did not say it is outside its schedule:\n%s", d.Output())
	}
}

// TestUptimeWindowAndForceTag: outside its uptime window the daemon takes
// no task; tagging the queue force_workers:on makes it take it.
func TestUptimeWindowAndForceTag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.task("waits for its window", "", "print('ran')\n")
	d := e.daemon("--queue", "default", "--uptime", outsideNow())
	waitOutsideSchedule(t, d)
	if tk := e.get(id); tk.Status != "queued" {
		t.Fatalf("task taken outside the uptime window: %s\n%s", tk.Status, d.Output())
	}
	q := e.queueID("default")
	if err := e.api.Call(context.Background(), "", "queues.update", map[string]any{"queue": q, "tags": []string{"force_workers:on"}}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if tk := e.waitStatus(id, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
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
	d := e.daemon("--queue", "default")
	id := e.task("seen by --status", "", "import time\nprint('working', flush=True)\ntime.sleep(60)\n")
	e.waitStatus(id, 60*time.Second, "in_progress")
	var code int
	var out string
	// (The server learns the running task from the daemon's next report.)
	testwait.For(60*time.Second, func() bool {
		code, out = e.run("daemon", "--queue", "default", "--uptime", "17-20 TUE", "0-6 MON", "--status")
		return strings.Contains(out, "running task "+id)
	})
	if code != 0 || !strings.Contains(out, "Working hours uptime configurations") || !strings.Contains(out, "0:00-5:59 on MON") ||
		!strings.Contains(out, "Listening to queue 'default'") || !strings.Contains(out, "running task "+id) {
		t.Fatalf("--status: exit %d\n%s\n%s", code, out, d.Output())
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

// TestSIGHUPReloadsSchedule: agent.uptime in clearml.conf keeps a task
// waiting; after the file changes and the daemon gets SIGHUP, it runs it.
func TestSIGHUPReloadsSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base, err := os.ReadFile(e.srv.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(e.dir, "agent.conf")
	write := func(extra string) {
		if err := os.WriteFile(conf, append(append([]byte{}, base...), extra...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("agent { uptime: [%q] }\n", outsideNow()))
	id := e.task("after reload", "", "print('ran')\n")
	d := testbin.Start(t, e.daemonEnv(), "--config-file", conf, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
	waitOutsideSchedule(t, d)
	if tk := e.get(id); tk.Status != "queued" {
		t.Fatalf("task taken outside the configured uptime: %s\n%s", tk.Status, d.Output())
	}
	write("")
	d.Signal(syscall.SIGHUP)
	if tk := e.waitStatus(id, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("task after reload = %s\n%s", tk.Status, d.Output())
	}
	if !strings.Contains(d.Output(), "configuration reloaded") {
		t.Fatalf("no reload message:\n%s", d.Output())
	}
}

// TestReportTagsAndCPUOnly: --child-report-tags go to the worker's status
// reports and to the task as CLEARML_WORKER_TAGS; --cpu-only hides GPUs
// and makes the worker id host:cpu:N.
func TestReportTagsAndCPUOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.daemon("--queue", "default", "--cpu-only", "--child-report-tags", "team-a", "spot")
	id := e.task("env check", "", "import os\nprint('TAGS=' + os.environ.get('CLEARML_WORKER_TAGS', ''), 'CUDA=' + os.environ.get('CUDA_VISIBLE_DEVICES', ''), 'WORKER=' + os.environ.get('CLEARML_WORKER_ID', ''))\n")
	e.waitStatus(id, 60*time.Second, "completed", "failed")
	log := strings.Join(e.logLines(id), "\n")
	if !strings.Contains(log, "TAGS=team-a spot CUDA=none WORKER=e2ehost:cpu:0") {
		t.Fatalf("task environment:\n%s\n%s", log, d.Output())
	}
	var resp struct {
		Workers []struct {
			ID   string
			Tags []string
		}
	}
	if !testwait.For(60*time.Second, func() bool {
		if err := e.api.Call(context.Background(), "", "workers.get_all", nil, &resp, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		return len(resp.Workers) == 1 && strings.Join(resp.Workers[0].Tags, ",") == "team-a,spot" && resp.Workers[0].ID == "e2ehost:cpu:0"
	}) {
		t.Fatalf("workers = %+v", resp.Workers)
	}
}
