package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
)

// twoTasks submits two literal scripts in project "Lists": an older one
// that is then stopped, and a newer one left queued.
func twoTasks(t *testing.T, e *cmdEnv) (older, newer string) {
	t.Helper()
	script := writeFile(t, filepath.Join(t.TempDir(), "work.py"), "print('work')\n")
	older = e.submit("--project", "Lists", "--name", "older task", "--script", script)
	newer = e.submit("--project", "Lists", "--name", "newer task", "--script", script, "--queue", "other", "--create-queue")
	e.mustRun("tasks", "abort", older)
	return older, newer
}

func TestTasksListAndShow(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	older, newer := twoTasks(t, e)

	out := e.mustRun("tasks", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS_REASON") {
		t.Fatalf("tasks list:\n%s", out)
	}
	if !strings.HasPrefix(lines[1], newer) || !strings.HasPrefix(lines[2], older) {
		t.Errorf("tasks list is not newest first:\n%s", out)
	}
	if !strings.Contains(lines[1], "newer task") || !strings.Contains(lines[1], "queued") || !strings.Contains(lines[2], "stopped") {
		t.Errorf("tasks list rows:\n%s", out)
	}
	if col := strings.Index(lines[0], "STATUS "); strings.Index(lines[1], "queued") != col {
		t.Errorf("columns are not aligned:\n%s", out)
	}

	out = e.mustRun("tasks", "list", "--status", "stopped,failed")
	if !strings.Contains(out, older) || strings.Contains(out, newer) {
		t.Errorf("--status stopped:\n%s", out)
	}
	if out = e.mustRun("tasks", "list", "--limit", "1"); !strings.Contains(out, newer) || strings.Contains(out, older) {
		t.Errorf("--limit 1:\n%s", out)
	}
	if out = e.mustRun("tasks", "list", "--project", "Lists", "--json"); !strings.HasPrefix(out, "[") {
		t.Errorf("--json:\n%s", out)
	}
	var docs []map[string]any
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 2 || docs[0]["id"] != newer {
		t.Errorf("--json: %v %v", docs, err)
	}
	if _, errOut, code := e.run("tasks", "list", "--project", "Nope"); code != 1 || !strings.Contains(errOut, `project "Nope" not found`) {
		t.Errorf("unknown project: exit %d %q", code, errOut)
	}
	if _, _, code := e.run("tasks", "list", "--status", "running"); code != 2 {
		t.Errorf("unknown status: exit %d, want 2", code)
	}

	out = e.mustRun("tasks", "show", newer)
	for _, want := range []string{"id:", newer, "status:", "queued", "Lists (", "other (", "entry_point:", "work.py"} {
		if !strings.Contains(out, want) {
			t.Errorf("tasks show lacks %q:\n%s", want, out)
		}
	}
	out = e.mustRun("tasks", "show", "--json", older)
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc["id"] != older || doc["status"] != "stopped" {
		t.Errorf("tasks show --json: %v %v\n%s", doc, err, out)
	}
	_, errOut, code := e.run("tasks", "show", "no-such-task")
	if code != 1 || !strings.HasPrefix(errOut, "clearml-agent: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("show of a missing task: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := e.run("tasks", "show"); code != 2 {
		t.Errorf("show without an id: exit %d, want 2", code)
	}
	if _, _, code := e.run("tasks", "frobnicate"); code != 2 {
		t.Errorf("unknown sub-command: exit %d, want 2", code)
	}
}

func TestTasksActions(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	older, newer := twoTasks(t, e)
	if st := e.task(older).Status; st != "stopped" {
		t.Fatalf("after abort: %s", st)
	}
	if out := e.mustRun("tasks", "enqueue", older, "--queue", "other"); !strings.Contains(out, `queued in "other"`) {
		t.Errorf("enqueue: %q", out)
	}
	task := e.task(older)
	if q, _ := task.Execution["queue"].(string); task.Status != "queued" || q != e.queueID("other") {
		t.Errorf("after enqueue: %s in %q", task.Status, q)
	}
	out := e.mustRun("tasks", "reset", newer, "--json")
	var resp map[string]any
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp["updated"] != 1.0 {
		t.Errorf("reset --json: %v %v", resp, err)
	}
	if st := e.task(newer).Status; st != "created" {
		t.Errorf("after reset: %s", st)
	}
	if out := e.mustRun("tasks", "enqueue", newer); !strings.Contains(out, `queued in "default"`) {
		t.Errorf("enqueue in the default queue: %q", out)
	}
	if q, _ := e.task(newer).Execution["queue"].(string); q != e.queueID("default") {
		t.Errorf("execution.queue = %q, want the default queue", q)
	}
	// Queued again: the server refuses a second enqueue into the same queue.
	if _, errOut, code := e.run("tasks", "enqueue", newer); code != 1 || !strings.HasPrefix(errOut, "clearml-agent: ") {
		t.Errorf("second enqueue: exit %d %q", code, errOut)
	}

	out = e.mustRun("queues", "list")
	var defaultRow, otherRow string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == "default" {
			defaultRow = l
		}
		if len(f) >= 3 && f[1] == "other" {
			otherRow = l
		}
	}
	if !strings.HasPrefix(out, "ID") || strings.Fields(defaultRow)[2] != "1" || strings.Fields(otherRow)[2] != "1" ||
		!strings.Contains(defaultRow, "default") {
		t.Errorf("queues list:\n%s", out)
	}
	var queues []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("queues", "list", "--json")), &queues); err != nil || len(queues) != 2 {
		t.Errorf("queues list --json: %v %v", queues, err)
	}

	if err := e.c.RegisterWorker(e.ctx, "host:gpu0", []string{e.queueID("other")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.c.StatusReport(e.ctx, apiclient.StatusReport{Worker: "host:gpu0", Task: older}); err != nil {
		t.Fatal(err)
	}
	out = e.mustRun("workers", "list")
	if !strings.Contains(out, "LAST_ACTIVITY") || !strings.Contains(out, "host:gpu0") || !strings.Contains(out, older) || !strings.Contains(out, "other") {
		t.Errorf("workers list:\n%s", out)
	}
	var workers []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("workers", "list", "--json")), &workers); err != nil || len(workers) != 1 || workers[0]["id"] != "host:gpu0" {
		t.Errorf("workers list --json: %v %v", workers, err)
	}
	if _, _, code := e.run("workers"); code != 2 {
		t.Errorf("workers without list: exit %d, want 2", code)
	}
}

func TestTasksLogs(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	script := writeFile(t, filepath.Join(t.TempDir(), "log.py"), "print(1)\n")
	id := e.submit("--script", script)
	base := time.Now().UnixMilli()
	e.logLines(id, []int64{base, base + 1, base + 1, base + 2}, "first", "second\n", "same ms", "third\nfourth")
	out := e.mustRun("tasks", "logs", id)
	if want := "first\nsecond\nsame ms\nthird\nfourth\n"; out != want {
		t.Errorf("tasks logs = %q, want %q", out, want)
	}

	// Paging with a small batch: events that share the boundary timestamp
	// come back in the next batch and are shown once; repeated identical
	// lines in one millisecond all show.
	id2 := e.submit("--script", script)
	ts := []int64{base, base + 1, base + 1, base + 1, base + 2, base + 3, base + 3, base + 4}
	msgs := []string{"a", "b", "c", "d", "e", "dup", "dup", "f"}
	e.logLines(id2, ts, msgs...)
	r := &logReader{c: e.c, task: id2, batch: 2}
	var got []string
	show := func(ev logEvent) error { got = append(got, ev.Msg); return nil }
	if n, err := r.drain(e.ctx, show); err != nil || n != len(msgs) {
		t.Fatalf("drain: %d, %v", n, err)
	}
	if strings.Join(got, ",") != strings.Join(msgs, ",") {
		t.Errorf("paged log = %v, want %v", got, msgs)
	}
	e.logLines(id2, []int64{base + 4, base + 5}, "g", "h")
	if n, err := r.drain(e.ctx, show); err != nil || n != 2 || strings.Join(got[len(msgs):], ",") != "g,h" {
		t.Errorf("second drain: %d %v %v", n, err, got)
	}
	if n, err := r.drain(e.ctx, show); err != nil || n != 0 {
		t.Errorf("third drain: %d %v", n, err)
	}
}

// watchWriter collects output and closes seen once it holds want.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.b.String(), w.want)
	w.b.Write(p)
	if !had && strings.Contains(w.b.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestTasksLogsFollow(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	script := writeFile(t, filepath.Join(t.TempDir(), "follow.py"), "print(1)\n")
	for _, tc := range []struct {
		end  string
		code int
	}{{"stopped", 2}, {"completed", 0}, {"failed", 1}} {
		id := e.submit("--script", script)
		if err := e.c.SetStatus(e.ctx, "tasks.started", id, true, "", "", apiclient.Default); err != nil {
			t.Fatal(err)
		}
		e.logLines(id, []int64{time.Now().UnixMilli()}, "started")
		following := &watchWriter{want: "started\n", seen: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			// The last line and the end come once the command follows.
			var notSeen error
			select {
			case <-following.seen:
			case <-time.After(60 * time.Second):
				notSeen = errors.New("tasks logs --follow never printed the first line")
			}
			var out, errOut strings.Builder
			ev, _ := json.Marshal(map[string]any{"type": "log", "task": id, "msg": "last words", "timestamp": time.Now().UnixMilli()})
			if _, _, err := e.c.AddEvents(e.ctx, [][]byte{ev}, apiclient.Default); err != nil {
				done <- err
				return
			}
			switch tc.end {
			case "stopped":
				if code := Main([]string{"--config-file", e.conf, "tasks", "abort", id}, &out, &errOut); code != 0 {
					done <- fmt.Errorf("abort: exit %d: %s", code, errOut.String())
					return
				}
			default:
				if err := e.c.SetStatus(e.ctx, "tasks."+tc.end, id, true, "the end", "", apiclient.Default); err != nil {
					done <- err
					return
				}
			}
			done <- notSeen
		}()
		var errBuf strings.Builder
		code := Main([]string{"--config-file", e.conf, "tasks", "logs", id, "--follow"}, following, &errBuf)
		out, errOut := following.String(), errBuf.String()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if code != tc.code || out != "started\nlast words\n" {
			t.Errorf("%s: exit %d (want %d), stdout %q, stderr %q", tc.end, code, tc.code, out, errOut)
		}
		if tc.code != 0 && !strings.Contains(errOut, "task "+id) {
			t.Errorf("%s: stderr %q", tc.end, errOut)
		}
	}
}
