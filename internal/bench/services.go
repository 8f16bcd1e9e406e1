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
	start := time.Now()
	for range tasks {
		id, err := createTask(ctx, srv.api, "service", script)
		if err != nil {
			return nil, err
		}
		if _, err := enqueue(ctx, srv.api, id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	defer os.WriteFile(flag, nil, 0o644) // whatever happens, let them end
	if err := waitAll(ctx, srv, ids, 5*time.Minute, api.StatusInProgress); err != nil {
		return nil, err
	}
	allUp := time.Since(start)
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
	if err := sleep(ctx, time.Until(start.Add(allUp+settled))); err != nil {
		return nil, err
	}
	treeSettled := treeRSS(d.pid())
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		return nil, fmt.Errorf("releasing the tasks: %w", err)
	}
	if err := waitAll(ctx, srv, ids, 5*time.Minute, api.StatusCompleted); err != nil {
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
		{Metric: fmt.Sprintf("enqueue to all %d running", tasks), Value: ms(allUp), Unit: "ms", N: tasks},
	}, nil
}

// waitAll polls until every task has the status; a task that ends
// otherwise (failed, stopped) is an error.
func waitAll(ctx context.Context, srv *server, ids []string, timeout time.Duration, status string) error {
	deadline := time.Now().Add(timeout)
	pending := ids
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			s, reason, err := srv.api.TaskStatus(ctx, id)
			if err != nil {
				return fmt.Errorf("reading task %s: %w", id, err)
			}
			switch {
			case s == status:
			case s == api.StatusFailed || s == api.StatusStopped || (s == api.StatusCompleted && status != api.StatusCompleted):
				return fmt.Errorf("task %s is %s (%s), want %s", id, s, reason, status)
			default:
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tasks not %s after %s", len(pending), len(ids), status, timeout)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
