package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// servicesUnavailable is the row of a daemon that refuses --services-mode.
const servicesUnavailable = "not available: --services-mode not supported by this build"

// settled is when, after the last task's start, the services scenario
// measures the tasks' memory again: past the supervisors' settling.
const settled = 15 * time.Second

// runServices: a daemon in services mode takes many tasks at once; each
// prints a line and waits for a flag file. Once all run, the daemon's
// CPU and memory are measured over a window, and the memory again once
// settled; then the flag ends them.
func runServices(ctx context.Context, r *runner) ([]Result, error) {
	tasks := r.size(50, 10)
	metric := fmt.Sprintf("%d tasks running: daemon RSS", tasks)
	st, srv, d, err := r.daemonStack(ctx, "services", nil, "--services-mode")
	var exited *daemonExited
	if errors.As(err, &exited) && strings.Contains(exited.out, "services-mode") {
		return []Result{{Metric: metric, Skipped: servicesUnavailable}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer st.close()
	flag := filepath.Join(st.dir, "release")
	code := fmt.Sprintf("import os, time\nprint('UP_%%d' %% 1, flush=True)\nwhile not os.path.exists(%s):\n    time.sleep(0.2)\n",
		strconv.Quote(flag))
	script := map[string]any{"binary": "python3", "entry_point": "t.py", "diff": code}
	ids := make([]string, 0, tasks)
	var first, last time.Time // the server's times of the first and last enqueue
	for range tasks {
		id, err := createTask(ctx, srv.api, "service", script)
		if err != nil {
			return nil, err
		}
		enq, err := enqueue(ctx, srv.api, id)
		if err != nil {
			return nil, err
		}
		if first.IsZero() {
			first = enq
		}
		last = enq
		ids = append(ids, id)
	}
	defer os.WriteFile(flag, nil, 0o644) // whatever happens, let them end
	states, err := waitAll(ctx, srv, ids, 5*time.Minute, api.StatusInProgress)
	if err != nil {
		return nil, err
	}
	polled := time.Since(first)
	allUp, err := lastStart(states, first)
	if err != nil {
		return nil, err
	}
	printing, err := firstLines(ctx, srv, ids, first)
	if err != nil {
		return nil, err
	}
	printingP50, _, allPrinting := percentiles(printing)
	window := r.window(10*time.Second, 5*time.Second)
	m, err := startCPU(d.pid())
	if err != nil {
		return nil, err
	}
	treeBefore := treeCPU(d.pid())
	if err := sleep(ctx, window); err != nil {
		return nil, err
	}
	cores, err := m.cores()
	if err != nil {
		return nil, err
	}
	treeCores := (treeCPU(d.pid()) - treeBefore).Seconds() / time.Since(m.start).Seconds()
	rss, err := rssMiB(d.pid())
	if err != nil {
		return nil, err
	}
	tree := treeRSS(d.pid())
	// Supervisors give back the pages of their start memtrim.Settle after
	// their task's: measured again once all have.
	if err := sleep(ctx, time.Until(first.Add(allUp+settled))); err != nil {
		return nil, err
	}
	treeSettled := treeRSS(d.pid())
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		return nil, fmt.Errorf("releasing the tasks: %w", err)
	}
	if _, err := waitAll(ctx, srv, ids, 5*time.Minute, api.StatusCompleted); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("measured over %s with all %d running", window, tasks)
	return []Result{
		{Metric: metric, Value: rss, Unit: "MiB", N: tasks, Note: note},
		{Metric: fmt.Sprintf("%d tasks running: daemon CPU", tasks), Value: cores * 100, Unit: "% of a core", N: tasks},
		{Metric: fmt.Sprintf("%d tasks running: RSS with the tasks", tasks), Value: tree, Unit: "MiB", N: tasks, Note: "daemon and every process below it"},
		{Metric: fmt.Sprintf("%d tasks running: RSS with the tasks, settled", tasks), Value: treeSettled, Unit: "MiB", N: tasks,
			Note: fmt.Sprintf("%s after the last task's start", settled)},
		{Metric: fmt.Sprintf("%d tasks running: CPU with the tasks", tasks), Value: treeCores * 100, Unit: "% of a core", N: tasks},
		{Metric: fmt.Sprintf("enqueue to all %d running", tasks), Value: ms(allUp), Unit: "ms", N: tasks,
			Note: "first enqueue to the last in_progress, server timestamps"},
		{Metric: fmt.Sprintf("enqueue of all %d", tasks), Value: ms(last.Sub(first)), Unit: "ms", N: tasks,
			Note: "first to last enqueue, one client creating and enqueueing in turn"},
		{Metric: fmt.Sprintf("enqueue to all %d running, as polled", tasks), Value: ms(polled), Unit: "ms", N: tasks,
			Note: "until a poll (every 250 ms) saw the last in_progress"},
		{Metric: fmt.Sprintf("enqueue to the first line of all %d", tasks), Value: ms(allPrinting), Unit: "ms", N: tasks,
			Note: "first enqueue to the last task's first log line (daemon's timestamp)"},
		{Metric: "enqueue to a task's first line, p50", Value: ms(printingP50), Unit: "ms", N: tasks,
			Note: "first enqueue to each task's first log line, the median task"},
	}, nil
}

// waitAll polls, with one tasks.get_all a pass, until every task has the
// status; a task that ends otherwise (failed, stopped) is an error. It
// returns the tasks as last read.
func waitAll(ctx context.Context, srv *server, ids []string, timeout time.Duration, status string) (map[string]api.Task, error) {
	deadline := time.Now().Add(timeout)
	for {
		var resp struct {
			Tasks []api.Task `json:"tasks"`
		}
		req := map[string]any{"id": ids, "only_fields": []string{"id", "status", "status_reason", "started"}, "page_size": len(ids)}
		if err := srv.api.Call(ctx, "", "tasks.get_all", req, &resp, apiclient.Default); err != nil {
			return nil, fmt.Errorf("reading the tasks: %w", err)
		}
		got := make(map[string]api.Task, len(resp.Tasks))
		for _, t := range resp.Tasks {
			got[t.ID] = t
		}
		pending := 0
		for _, id := range ids {
			t, ok := got[id]
			switch {
			case !ok:
				return nil, fmt.Errorf("task %s is missing from tasks.get_all", id)
			case t.Status == status:
			case t.Status == api.StatusFailed || t.Status == api.StatusStopped || (t.Status == api.StatusCompleted && status != api.StatusCompleted):
				return nil, fmt.Errorf("task %s is %s (%s), want %s", id, t.Status, t.StatusReason, status)
			default:
				pending++
			}
		}
		if pending == 0 {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d tasks not %s after %s", pending, len(ids), status, timeout)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// lastStart is the time from first to the last task's start (in_progress),
// by the server's timestamps.
func lastStart(states map[string]api.Task, first time.Time) (time.Duration, error) {
	var last time.Time
	for id, t := range states {
		if t.Started == nil || t.Started.IsZero() {
			return 0, fmt.Errorf("task %s is in_progress with no started time", id)
		}
		if t.Started.After(last) {
			last = t.Started.Time
		}
	}
	return last.Sub(first), nil
}

// firstLines are the times from first to each task's first log line (the
// event's timestamp, set by the daemon as it read the line).
func firstLines(ctx context.Context, srv *server, ids []string, first time.Time) ([]time.Duration, error) {
	var lines []time.Duration
	deadline := time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			at, ok, err := firstEventWith(ctx, srv.api, id, "UP_1")
			if err != nil {
				return nil, err
			}
			if ok {
				lines = append(lines, at.Sub(first))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("task %s printed no first line within a minute of running", id)
			}
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return lines, nil
}
