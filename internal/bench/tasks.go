package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// Task scripts. Each prints a marker its source does not contain
// literally, so that the script's own text (echoed in set-up logs) is
// never taken for its output.
var (
	pyFirstLine = map[string]any{"binary": "python3", "entry_point": "t.py", "diff": "print('FIRST_%d' % 2, flush=True)\n"}
	shFirstLine = map[string]any{"binary": "/bin/sh", "entry_point": "t.sh", "diff": "echo FIRST_$((1+1))\n"}
	pyPass      = map[string]any{"binary": "python3", "entry_point": "t.py", "diff": "pass\n"}
)

const firstMarker = "FIRST_2"

// createTask makes a training task with the given script.
func createTask(ctx context.Context, c *apiclient.Client, name string, script map[string]any) (string, error) {
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": name, "type": "training", "script": script}, &created, apiclient.Default); err != nil {
		return "", fmt.Errorf("creating a task: %w", err)
	}
	return created.ID, nil
}

// enqueue puts the task in the default queue and returns the server's
// time of the status change.
func enqueue(ctx context.Context, c *apiclient.Client, id string) (time.Time, error) {
	var enq struct {
		Fields struct {
			StatusChanged api.Time `json:"status_changed"`
		} `json:"fields"`
	}
	if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": id}, &enq, apiclient.Default); err != nil {
		return time.Time{}, fmt.Errorf("enqueueing task %s: %w", id, err)
	}
	if enq.Fields.StatusChanged.IsZero() {
		return time.Time{}, fmt.Errorf("enqueueing task %s: no status_changed in the answer", id)
	}
	return enq.Fields.StatusChanged.Time, nil
}

// waitStatus polls the task until it has one of the statuses.
func waitStatus(ctx context.Context, c *apiclient.Client, id string, timeout time.Duration, statuses ...string) (*api.Task, error) {
	deadline := time.Now().Add(timeout)
	for {
		t, err := c.Task(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("reading task %s: %w", id, err)
		}
		if slices.Contains(statuses, t.Status) {
			return t, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %s is %s after %s, want %s", id, t.Status, timeout, strings.Join(statuses, " or "))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// firstLine enqueues a new task with script and returns the time from its
// enqueue to the log event holding firstMarker (timestamped by the daemon
// when it read the line), after the task has ended.
func firstLine(ctx context.Context, c *apiclient.Client, script map[string]any) (time.Duration, error) {
	id, err := createTask(ctx, c, "first line", script)
	if err != nil {
		return 0, err
	}
	enq, err := enqueue(ctx, c, id)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		at, ok, err := firstEventWith(ctx, c, id, firstMarker)
		if err != nil {
			return 0, err
		}
		if ok {
			t, err := waitStatus(ctx, c, id, time.Minute, api.StatusCompleted, api.StatusFailed)
			if err != nil {
				return 0, err
			}
			if t.Status != api.StatusCompleted {
				return 0, fmt.Errorf("task %s failed: %s", id, t.StatusReason)
			}
			return at.Sub(enq), nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no first line from task %s within 3 minutes", id)
}

// firstEventWith returns the timestamp of the task's first log event
// holding marker.
func firstEventWith(ctx context.Context, c *apiclient.Client, id, marker string) (time.Time, bool, error) {
	events, err := logPage(ctx, c, id, false, 0, 500)
	if err != nil {
		return time.Time{}, false, err
	}
	for _, ev := range events {
		if msg, _ := ev["msg"].(string); strings.Contains(msg, marker) {
			ts, _ := ev["timestamp"].(float64)
			return time.UnixMilli(int64(ts)), true, nil
		}
	}
	return time.Time{}, false, nil
}

// logPage is one events.get_task_log page: oldest first after the cursor
// from (ms; 0: from the start), or the newest when earlier is true.
func logPage(ctx context.Context, c *apiclient.Client, id string, earlier bool, from float64, batch int) ([]map[string]any, error) {
	body := map[string]any{"task": id, "navigate_earlier": earlier, "batch_size": batch}
	if from > 0 {
		body["from_timestamp"] = from
	}
	var resp api.TaskLogResponse
	if err := c.Call(ctx, "", "events.get_task_log", body, &resp, apiclient.Default); err != nil {
		return nil, fmt.Errorf("reading the log of task %s: %w", id, err)
	}
	return resp.Events, nil
}

// readLog returns every log event of the task, oldest first.
func readLog(ctx context.Context, c *apiclient.Client, id string) ([]map[string]any, error) {
	var all []map[string]any
	var from float64
	for {
		page, err := logPage(ctx, c, id, false, from, 5000)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return all, nil
		}
		all = append(all, page...)
		last, _ := page[len(page)-1]["timestamp"].(float64)
		if last <= from {
			return all, nil // no progress: the server ignores the cursor
		}
		from = last
	}
}

// serverTime reads an event's "@timestamp" (when the server stored it).
func serverTime(ev map[string]any) (time.Time, bool) {
	raw, err := json.Marshal(ev["@timestamp"])
	if err != nil {
		return time.Time{}, false
	}
	var t api.Time
	if json.Unmarshal(raw, &t) != nil || t.IsZero() {
		return time.Time{}, false
	}
	return t.Time, true
}
