package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// daemonStack is a server and one idle daemon on its default queue.
func (r *runner) daemonStack(ctx context.Context, name string, env []string, args ...string) (*stack, *server, *proc, error) {
	st, err := newStack(r.root, name, r.bin)
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := st.startServer(ctx)
	if err != nil {
		st.close()
		return nil, nil, nil, err
	}
	d, err := st.startDaemon(ctx, srv, "bench-"+name, env, append([]string{"--queue", "default"}, args...)...)
	if err != nil {
		st.close()
		return nil, nil, nil, err
	}
	return st, srv, d, nil
}

// runPickup: an idle daemon long-polls the default queue; each sample is
// a trivial task's start time minus its enqueue time, both stamped by the
// server.
func runPickup(ctx context.Context, r *runner) ([]Result, error) {
	st, srv, _, err := r.daemonStack(ctx, "pickup", nil)
	if err != nil {
		return nil, err
	}
	defer st.close()
	var pickups []time.Duration
	for range r.size(30, 10) {
		id, err := createTask(ctx, srv.api, "pickup", pyPass)
		if err != nil {
			return nil, err
		}
		enq, err := enqueue(ctx, srv.api, id)
		if err != nil {
			return nil, err
		}
		t, err := waitStatus(ctx, srv.api, id, 2*time.Minute, api.StatusCompleted, api.StatusFailed)
		if err != nil {
			return nil, err
		}
		if t.Started == nil {
			return nil, fmt.Errorf("task %s has no started time", id)
		}
		pickups = append(pickups, t.Started.Sub(enq))
	}
	return latencyRows("enqueue to start", pickups, "server timestamps, millisecond resolution"), nil
}

// runFirstLine: enqueue to the first line of a Python task; cold empties
// the daemon's environment cache (venvs and the pip seed) before each
// task, warm keeps it. The task has no requirements, except in the last
// series: one requirement from a local find-links folder, cold (what a
// machine's first task with requirements costs: pip seed, venv, install).
func runFirstLine(ctx context.Context, r *runner) ([]Result, error) {
	links := filepath.Join(r.root, "wheels")
	if err := os.MkdirAll(links, 0o755); err != nil {
		return nil, fmt.Errorf("creating the wheel folder: %w", err)
	}
	if err := writeWheel(links, "benchpkg", "1.0"); err != nil {
		return nil, err
	}
	st, srv, _, err := r.daemonStack(ctx, "firstline", []string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + links})
	if err != nil {
		return nil, err
	}
	defer st.close()
	withReq := map[string]any{"binary": "python3", "entry_point": "t.py", "requirements": map[string]any{"pip": "benchpkg==1.0\n"},
		"diff": "import benchpkg\nprint('FIRST_%d' % 2, flush=True)\n"}
	series := func(n int, cold bool, script map[string]any) ([]time.Duration, error) {
		var ds []time.Duration
		for range n {
			if cold {
				if err := os.RemoveAll(filepath.Join(st.dir, "venvs")); err != nil {
					return nil, fmt.Errorf("emptying the environment cache: %w", err)
				}
			}
			d, err := firstLine(ctx, srv.api, script)
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	var res []Result
	for _, s := range []struct {
		name, note string
		n          int
		cold       bool
		script     map[string]any
	}{
		{"cold, no requirements", "venvs cache (and pip seed) emptied before each task", r.size(5, 2), true, pyFirstLine},
		{"warm, no requirements", "environment cached", r.size(10, 3), false, pyFirstLine},
		{"cold, 1 requirement", "empty venvs cache: pip seed, venv, pip install from a local wheel", r.size(3, 1), true, withReq},
	} {
		ds, err := series(s.n, s.cold, s.script)
		if err != nil {
			return res, err
		}
		p50, _, mx := percentiles(ds)
		res = append(res,
			Result{Metric: s.name + ": enqueue to first line p50", Value: ms(p50), Unit: "ms", N: len(ds), Note: s.note},
			Result{Metric: s.name + ": enqueue to first line max", Value: ms(mx), Unit: "ms", N: len(ds)})
	}
	return res, nil
}

// runLogs: a task prints many numbered lines as fast as Python can; the
// figures are the lines and bytes per second from the first line's read
// (daemon timestamp) to the last line's storage (server timestamp), and
// the lines missing or duplicated in events.get_task_log.
func runLogs(ctx context.Context, r *runner) ([]Result, error) {
	st, srv, _, err := r.daemonStack(ctx, "logs", nil)
	if err != nil {
		return nil, err
	}
	defer st.close()
	lines := r.size(200_000, 50_000)
	const pad = 60
	code := fmt.Sprintf("import sys\nw = sys.stdout.write\nfor i in range(%d):\n    w('line %%07d %%s\\n' %% (i, 'x' * %d))\n", lines, pad)
	lineBytes := len("line 0000000 ") + pad + 1
	id, err := createTask(ctx, srv.api, "log flood", map[string]any{"binary": "python3", "entry_point": "t.py", "diff": code})
	if err != nil {
		return nil, err
	}
	if _, err := enqueue(ctx, srv.api, id); err != nil {
		return nil, err
	}
	if t, err := waitStatus(ctx, srv.api, id, 5*time.Minute, api.StatusCompleted, api.StatusFailed); err != nil {
		return nil, err
	} else if t.Status != api.StatusCompleted {
		return nil, fmt.Errorf("log task %s failed: %s", id, t.StatusReason)
	}
	// The daemon delivers the rest of the log after the status: wait for
	// the last line.
	last := fmt.Sprintf("line %07d ", lines-1)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		events, err := logPage(ctx, srv.api, id, true, 0, 20)
		if err != nil {
			return nil, err
		}
		if hasLine(events, last) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the last line of task %s did not arrive within 5 minutes", id)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	events, err := readLog(ctx, srv.api, id)
	if err != nil {
		return nil, err
	}
	c := countLines(events, lines)
	if c.first.IsZero() || c.last.IsZero() || !c.last.After(c.first) {
		return nil, fmt.Errorf("log of task %s: no time span between the first and the last line", id)
	}
	span := c.last.Sub(c.first).Seconds()
	note := fmt.Sprintf("%d lines of %d bytes, %d events", lines, lineBytes, c.events)
	return []Result{
		{Metric: "throughput", Value: float64(lines) / span, Unit: "lines/s", Note: note},
		{Metric: "throughput", Value: float64(lines*lineBytes) / span / 1e6, Unit: "MB/s"},
		{Metric: "lines lost", Value: float64(lines - c.unique), Unit: "lines", N: lines, Note: "printed but not in events.get_task_log"},
		{Metric: "lines duplicated", Value: float64(c.seen - c.unique), Unit: "lines", N: lines},
	}, nil
}

func hasLine(events []map[string]any, prefix string) bool {
	for _, ev := range events {
		if msg, _ := ev["msg"].(string); strings.Contains(msg, prefix) {
			return true
		}
	}
	return false
}

// lineCount is what a task log holds of the numbered lines.
type lineCount struct {
	events, seen, unique int
	first, last          time.Time // first line read by the daemon, last line stored by the server
}

func countLines(events []map[string]any, lines int) lineCount {
	var c lineCount
	got := make([]bool, lines)
	for _, ev := range events {
		msg, _ := ev["msg"].(string)
		found := false
		for _, l := range strings.Split(msg, "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(l), "line ")
			if !ok || len(rest) < 7 {
				continue
			}
			n, err := strconv.Atoi(rest[:7])
			if err != nil || n < 0 || n >= lines {
				continue
			}
			found = true
			c.seen++
			if !got[n] {
				got[n] = true
				c.unique++
			}
			if n == 0 {
				ts, _ := ev["timestamp"].(float64)
				c.first = time.UnixMilli(int64(ts))
			}
			if n == lines-1 {
				if t, ok := serverTime(ev); ok {
					c.last = t
				}
			}
		}
		if found {
			c.events++
		}
	}
	return c
}

// runIdle: a registered daemon with nothing to do, measured over a window.
func runIdle(ctx context.Context, r *runner) ([]Result, error) {
	st, _, d, err := r.daemonStack(ctx, "idle", nil)
	if err != nil {
		return nil, err
	}
	defer st.close()
	if err := sleep(ctx, 2*time.Second); err != nil { // past start-up
		return nil, err
	}
	window := r.window(30*time.Second, 10*time.Second)
	m, err := startCPU(d.pid())
	if err != nil {
		return nil, err
	}
	peak := 0.0
	for end := time.Now().Add(window); time.Now().Before(end); {
		if rss, err := rssMiB(d.pid()); err == nil {
			peak = max(peak, rss)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
	cores, err := m.cores()
	if err != nil {
		return nil, err
	}
	rss, err := rssMiB(d.pid())
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("over %s, long-polling", window)
	split := ""
	status := fmt.Sprintf("/proc/%d/status", d.pid())
	if anon, ok := procField(status, "RssAnon"); ok {
		file, _ := procField(status, "RssFile")
		split = fmt.Sprintf("; %.1f MiB its own (RssAnon), %.1f MiB pages of the binary (RssFile)", float64(anon)/1024, float64(file)/1024)
	}
	return []Result{
		{Metric: "daemon RSS", Value: rss, Unit: "MiB", Note: note + split},
		{Metric: "daemon RSS peak", Value: max(peak, rss), Unit: "MiB"},
		{Metric: "daemon RSS with its processes", Value: treeRSS(d.pid()), Unit: "MiB", Note: "the daemon and every process below it (the spare task supervisor)"},
		{Metric: "daemon CPU", Value: cores * 100, Unit: "% of a core", Note: note},
	}, nil
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
