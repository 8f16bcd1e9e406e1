package clustertest

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// The daemon hosts and their queues: two share the general queue; the
// partition and freeze scenarios each have a host and a queue of their own.
const (
	workQueue   = "work"
	cutQueue    = "cut"
	frozenQueue = "frozen"
)

// The bed's timeouts: short, so the scenarios see them pass.
const (
	leaseTimeout  = 3 * time.Second
	workerTimeout = 10 * time.Second
)

var shared struct {
	once sync.Once
	bed  *Bed
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.bed != nil {
		shared.bed.Close()
	}
	testbin.Cleanup()
	os.Exit(code)
}

// bed returns the deployment the tests share (started by the first test
// that asks), or skips where Docker or a program it runs is absent.
func bed(t *testing.T) *Bed {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the cluster tests start a deployment of several containers")
	}
	dockertest.Require(t)
	bin := testbin.Path(t)
	shared.once.Do(func() {
		start := time.Now()
		shared.bed, shared.err = Start(context.Background(), Options{Binary: bin, LeaseTimeout: leaseTimeout, WorkerTimeout: workerTimeout,
			Daemons: []Daemon{{"d1", workQueue}, {"d2", workQueue}, {"d3", cutQueue}, {"d4", frozenQueue}}})
		t.Logf("deployment started in %v", time.Since(start).Round(100*time.Millisecond))
	})
	if errors.Is(shared.err, ErrSkip) {
		t.Skip(shared.err)
	}
	if shared.err != nil {
		t.Fatalf("starting the deployment: %v", shared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			shared.bed.Dump(t)
		}
	})
	return shared.bed
}

// shTask creates a shell task and enqueues it; the error is the
// enqueue's (nil: acknowledged).
func shTask(ctx context.Context, c *apiclient.Client, name, queue, script string) (string, error) {
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": name, "type": "service",
		"script": map[string]any{"binary": "/bin/sh", "entry_point": "task.sh", "diff": script}}, &created, apiclient.Default); err != nil {
		return "", err
	}
	return created.ID, c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": queue}, nil, apiclient.Default)
}

func task(t testing.TB, c *apiclient.Client, id string) *api.Task {
	t.Helper()
	tk, err := c.Task(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// waitStatus waits until the task has one of the statuses.
func waitStatus(t testing.TB, c *apiclient.Client, id string, d time.Duration, want ...string) *api.Task {
	t.Helper()
	var tk *api.Task
	if testwait.For(d, func() bool {
		got, err := c.Task(context.Background(), id)
		if err == nil {
			tk = got
		}
		return tk != nil && slices.Contains(want, tk.Status)
	}) {
		return tk
	}
	if tk == nil {
		t.Fatalf("task %s unreadable for %v", id, d)
	}
	t.Fatalf("task %s is %s (%q) after %v, want %v", id, tk.Status, tk.StatusReason, d, want)
	return nil
}

// logLines returns a task's log, oldest first, split in lines.
func logLines(t testing.TB, c *apiclient.Client, id string) []string {
	t.Helper()
	var lines []string
	var resp api.TaskLogResponse
	err := c.Call(context.Background(), "", "events.get_task_log",
		map[string]any{"task": id, "navigate_earlier": false, "batch_size": 100000}, &resp, apiclient.Default)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range resp.Events {
		msg, _ := ev["msg"].(string)
		lines = append(lines, strings.Split(strings.TrimRight(msg, "\n"), "\n")...)
	}
	return lines
}
