package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
)

// logBatch is how many log events one events.get_task_log call asks for.
const logBatch = 1000

// followInterval is how often "tasks logs --follow" polls.
const followInterval = 500 * time.Millisecond

// logEvent is one task log event.
type logEvent struct {
	Timestamp float64 `json:"timestamp"`
	Msg       string  `json:"msg"`
}

type logKey struct {
	ts  int64
	msg string
}

// logReader pages through a task's log oldest first with
// events.get_task_log (navigate_earlier false). Each call continues from
// the timestamp of the newest event shown: from_timestamp is one
// millisecond before it, so that events logged in that same millisecond
// after the previous call are not missed (servers return the events after
// from_timestamp, and put every event that shares a batch's last timestamp
// in that batch). The events at the boundary timestamp thus come back;
// they are recognised by (timestamp, msg) and skipped, counting repeats,
// so that identical lines logged in the same millisecond all show.
type logReader struct {
	c       *apiclient.Client
	task    string
	batch   int
	started bool           // an event was shown; last and seen are set
	last    int64          // the newest timestamp shown (epoch ms)
	seen    map[logKey]int // the events at last already shown
}

// drain shows every event not shown yet and returns how many it showed.
func (r *logReader) drain(ctx context.Context, show func(logEvent) error) (int, error) {
	shown := 0
	for {
		req := map[string]any{"task": r.task, "batch_size": r.batch, "navigate_earlier": false}
		if r.started {
			req["from_timestamp"] = r.last - 1
		}
		var resp struct {
			Events []logEvent `json:"events"`
		}
		if err := r.c.Call(ctx, "", "events.get_task_log", req, &resp, apiclient.Default); err != nil {
			return shown, err
		}
		events := resp.Events
		if len(events) == 0 {
			return shown, nil
		}
		sort.SliceStable(events, func(i, j int) bool { return events[i].Timestamp < events[j].Timestamp })
		repeats := maps.Clone(r.seen)
		fresh := 0
		for _, e := range events {
			k := logKey{int64(e.Timestamp), e.Msg}
			if r.started && k.ts < r.last {
				continue // shown before
			}
			if repeats[k] > 0 {
				repeats[k]--
				continue
			}
			if err := show(e); err != nil {
				return shown, err
			}
			fresh++
		}
		shown += fresh
		last := int64(events[len(events)-1].Timestamp)
		full := len(events) >= r.batch
		switch {
		case r.started && last < r.last:
			// Only old events came back: nothing to move on to.
			return shown, nil
		case r.started && last == r.last && full && fresh == 0:
			// A whole batch of events at one timestamp, all shown: step
			// past it, or the same batch would come back forever.
			r.last, r.seen = r.last+1, nil
			continue
		default:
			seen := map[logKey]int{}
			for _, e := range events {
				if int64(e.Timestamp) == last {
					seen[logKey{last, e.Msg}]++
				}
			}
			r.started, r.last, r.seen = true, last, seen
		}
		if !full {
			return shown, nil
		}
	}
}

// finalExit is how "tasks logs --follow" ends: the exit code for the
// task's final status.
type finalExit struct {
	code int
	msg  string
}

func (e *finalExit) Error() string { return e.msg }
func (e *finalExit) ExitCode() int { return e.code }

// taskState reads a task's status and status reason.
func taskState(ctx context.Context, c *apiclient.Client, id string) (status, reason string, err error) {
	req := map[string]any{"id": []string{id}, "only_fields": []string{"status", "status_reason"}, "search_hidden": true}
	var resp struct {
		Tasks []struct {
			Status       string `json:"status"`
			StatusReason string `json:"status_reason"`
		} `json:"tasks"`
	}
	if err := c.Call(ctx, "", "tasks.get_all", req, &resp, apiclient.Default); err != nil {
		return "", "", err
	}
	if len(resp.Tasks) == 0 {
		return "", "", fmt.Errorf("task %s not found", id)
	}
	return resp.Tasks[0].Status, resp.Tasks[0].StatusReason, nil
}

// finalResult maps a final status to the command's result; ok is false
// while the task has not ended.
func finalResult(id, status, reason string) (err error, ok bool) {
	why := ""
	if reason != "" {
		why = ": " + reason
	}
	switch status {
	case api.StatusCompleted, api.StatusPublished, api.StatusClosed:
		return nil, true
	case api.StatusFailed:
		return &finalExit{code: 1, msg: fmt.Sprintf("task %s failed%s", id, why)}, true
	case api.StatusStopped:
		return &finalExit{code: 2, msg: fmt.Sprintf("task %s was stopped%s", id, why)}, true
	}
	return nil, false
}

func tasksLogs(g args.Global, argv []string, stdout, stderr io.Writer) error {
	f := newFlags("tasks logs", "Usage: clearml-agent tasks logs TASK_ID [--follow]\n\n"+
		"Prints a task's log, oldest line first. With --follow it keeps polling every 500 ms\n"+
		"until the task has ended and no new lines arrive, then exits 0 when the task\n"+
		"completed (or was published or closed), 1 when it failed and 2 when it was stopped.\n")
	follow := f.fs.Bool("follow", false, "keep printing new lines until the task ends")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	id, err := oneTaskID("tasks logs", pos)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	return printLogs(ctx, c, id, *follow, followInterval, stdout, stderr)
}

// printLogs prints the task's log; with follow, until the task has ended.
// While the task waits in a queue, notes says where it stands (its
// position, and whether any worker listens to that queue), when that
// changes.
func printLogs(ctx context.Context, c *apiclient.Client, id string, follow bool, every time.Duration, w, notes io.Writer) error {
	r := &logReader{c: c, task: id, batch: logBatch}
	show := func(e logEvent) error {
		msg := e.Msg
		if !strings.HasSuffix(msg, "\n") {
			msg += "\n"
		}
		_, err := io.WriteString(w, msg)
		return err
	}
	if !follow {
		_, err := r.drain(ctx, show)
		return err
	}
	var noted time.Time
	lastNote := ""
	for {
		// The status first: lines logged before the task ended are then
		// all in by the time drain has read the log.
		status, reason, err := taskState(ctx, c, id)
		if err != nil {
			return err
		}
		n, err := r.drain(ctx, show)
		if err != nil {
			return err
		}
		if res, ended := finalResult(id, status, reason); ended && n == 0 {
			return res
		}
		if status == api.StatusQueued && time.Since(noted) >= queueNoteEvery {
			if note := queuedNote(ctx, c, id); note != "" && note != lastNote {
				fmt.Fprintln(notes, note)
				lastNote = note
			}
			noted = time.Now()
		}
		select {
		case <-ctx.Done():
			return &finalExit{code: 130, msg: "interrupted"}
		case <-time.After(every):
		}
	}
}

// queueNoteEvery is how often a follower looks where its queued task stands.
const queueNoteEvery = 3 * time.Second

// queuedNote says where a queued task stands: its queue, its position, and
// how many workers listen to that queue ("" when it cannot be told).
func queuedNote(ctx context.Context, c *apiclient.Client, id string) string {
	var tr struct {
		Tasks []struct {
			Execution struct {
				Queue string `json:"queue"`
			} `json:"execution"`
		} `json:"tasks"`
	}
	req := map[string]any{"id": []string{id}, "only_fields": []string{"execution.queue"}, "search_hidden": true}
	if err := c.Call(ctx, "", "tasks.get_all", req, &tr, apiclient.Poll); err != nil || len(tr.Tasks) == 0 || tr.Tasks[0].Execution.Queue == "" {
		return ""
	}
	qid := tr.Tasks[0].Execution.Queue
	var qr struct {
		Queue api.Queue `json:"queue"`
	}
	if err := c.Call(ctx, "", "queues.get_by_id", map[string]any{"queue": qid}, &qr, apiclient.Poll); err != nil {
		return ""
	}
	pos := slices.IndexFunc(qr.Queue.Entries, func(e api.QueueEntry) bool { return e.Task == id })
	var wr struct {
		Workers []struct {
			Queues []api.IDName `json:"queues"`
		} `json:"workers"`
	}
	if err := c.Call(ctx, "", "workers.get_all", map[string]any{}, &wr, apiclient.Poll); err != nil {
		return ""
	}
	listening := 0
	for _, w := range wr.Workers {
		if slices.ContainsFunc(w.Queues, func(q api.IDName) bool { return q.ID == qid }) {
			listening++
		}
	}
	note := fmt.Sprintf("Task %s is queued in %q", id, qr.Queue.Name)
	if pos >= 0 {
		note += fmt.Sprintf(", position %d of %d", pos+1, len(qr.Queue.Entries))
	}
	switch listening {
	case 0:
		note += fmt.Sprintf("; no worker listens to this queue (start one: clearml-agent daemon --queue %s)", qr.Queue.Name)
	case 1:
		note += "; 1 worker listens to this queue"
	default:
		note += fmt.Sprintf("; %d workers listen to this queue", listening)
	}
	return note
}
