package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
)

// runAbort: a daemon runs a Python task that writes its pid and sleeps;
// each sample is the time from the tasks.stop call (its answer) to the
// task's process being gone (/proc, read every millisecond).
func runAbort(ctx context.Context, r *runner) ([]Result, error) {
	st, srv, _, err := r.daemonStack(ctx, "abort", nil)
	if err != nil {
		return nil, err
	}
	defer st.close()
	var ds []time.Duration
	for i := range r.size(10, 3) {
		pidFile := filepath.Join(st.dir, fmt.Sprintf("abort-%d.pid", i))
		script := map[string]any{"binary": "python3", "entry_point": "t.py",
			"diff": fmt.Sprintf("import os, time\nopen(%q, 'w').write(str(os.getpid()))\ntime.sleep(600)\n", pidFile)}
		id, err := createTask(ctx, srv.api, "abort", script)
		if err != nil {
			return nil, err
		}
		if _, err := enqueue(ctx, srv.api, id); err != nil {
			return nil, err
		}
		pid, err := waitPID(ctx, pidFile, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		if err := srv.api.Call(ctx, "", "tasks.stop", map[string]any{"task": id}, nil, apiclient.Default); err != nil {
			return nil, fmt.Errorf("stopping the task: %w", err)
		}
		start := time.Now()
		for processAlive(pid) {
			if time.Since(start) > time.Minute {
				return nil, fmt.Errorf("task process %d still runs a minute after tasks.stop", pid)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		ds = append(ds, time.Since(start))
		if _, err := waitStatus(ctx, srv.api, id, time.Minute, "stopped"); err != nil {
			return nil, err
		}
	}
	return latencyRows("tasks.stop to process gone", ds, "Python task sleeping; /proc read every ms"), nil
}

// waitPID waits for a task to write its pid into file.
func waitPID(ctx context.Context, file string, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("no pid in %s within %v", file, d)
}

// processAlive says whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// runThroughput: 50 trivial Python tasks enqueued at once to one idle
// daemon; tasks per second from the first enqueue to the last completion
// (server timestamps).
func runThroughput(ctx context.Context, r *runner) ([]Result, error) {
	st, srv, _, err := r.daemonStack(ctx, "throughput", nil)
	if err != nil {
		return nil, err
	}
	defer st.close()
	// One task first: the environment is built and cached.
	id, err := createTask(ctx, srv.api, "warm-up", pyPass)
	if err != nil {
		return nil, err
	}
	if _, err := enqueue(ctx, srv.api, id); err != nil {
		return nil, err
	}
	if _, err := waitStatus(ctx, srv.api, id, 2*time.Minute, "completed"); err != nil {
		return nil, err
	}
	n := r.size(50, 10)
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = createTask(ctx, srv.api, "trivial", pyPass); err != nil {
			return nil, err
		}
	}
	var first time.Time
	for i, id := range ids {
		at, err := enqueue(ctx, srv.api, id)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			first = at
		}
	}
	var last time.Time
	for _, id := range ids {
		t, err := waitStatus(ctx, srv.api, id, 5*time.Minute, "completed", "failed")
		if err != nil {
			return nil, err
		}
		if t.Status != "completed" {
			return nil, fmt.Errorf("task %s %s: %s", id, t.Status, t.StatusReason)
		}
		if t.Completed != nil && t.Completed.After(last) {
			last = t.Completed.Time
		}
	}
	span := last.Sub(first)
	return []Result{{Metric: "trivial tasks per second, one daemon", Value: float64(n) / span.Seconds(), Unit: "tasks/s", N: n,
		Note: fmt.Sprintf("%d tasks of `pass` in %.2fs, first enqueue to last completion", n, span.Seconds())}}, nil
}
