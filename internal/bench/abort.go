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
			if err := sleep(ctx, time.Millisecond); err != nil {
				return nil, err
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
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
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
