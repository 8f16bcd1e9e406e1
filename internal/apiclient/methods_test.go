package apiclient_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/server"
)

func TestQueueMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(nil)
	ctx := t.Context()

	defID, defName, err := c.GetDefaultQueue(ctx)
	if err != nil || defID == "" || defName != "default" {
		t.Fatalf("GetDefaultQueue = %q, %q, %v", defID, defName, err)
	}
	name := "gpu.queue+1" // regexp metacharacters must be escaped
	id, err := c.CreateQueue(ctx, name)
	if err != nil || id == "" {
		t.Fatalf("CreateQueue = %q, %v", id, err)
	}
	if _, err := c.CreateQueue(ctx, name); !api.ErrExpectedUniqueData.Is(err) {
		t.Errorf("duplicate CreateQueue error = %v, want 400/801", err)
	}
	if got := e.last("queues.create"); got.Path != "/v2.5/queues.create" {
		t.Errorf("queues.create path = %s", got.Path)
	}

	tests := []struct {
		name    string
		get     func() ([]api.Queue, error)
		wantIDs []string
		check   func(t *testing.T, q api.Queue)
	}{
		{name: "by name", get: func() ([]api.Queue, error) { return c.QueuesByName(ctx, name) }, wantIDs: []string{id},
			check: func(t *testing.T, q api.Queue) {
				if q.Name != name || q.Created != nil {
					t.Errorf("queue = %+v, want only id and name", q)
				}
			}},
		{name: "by name, no match", get: func() ([]api.Queue, error) { return c.QueuesByName(ctx, "gpu-queue-1") }},
		{name: "by id, full", get: func() ([]api.Queue, error) { return c.QueuesByID(ctx, []string{id, defID}, nil) }, wantIDs: []string{defID, id},
			check: func(t *testing.T, q api.Queue) {
				if q.Created == nil || q.Company != api.DefaultCompany {
					t.Errorf("full queue lacks fields: %+v", q)
				}
			}},
		{name: "by id, projected", get: func() ([]api.Queue, error) { return c.QueuesByID(ctx, []string{defID}, []string{"id", "tags"}) }, wantIDs: []string{defID}},
		{name: "by id, none", get: func() ([]api.Queue, error) { return c.QueuesByID(ctx, nil, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs, err := tt.get()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, q := range qs {
				got[q.ID] = true
				if tt.check != nil {
					tt.check(t, q)
				}
			}
			want := map[string]bool{}
			for _, id := range tt.wantIDs {
				want[id] = true
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("queue ids = %v, want %v", got, want)
			}
		})
	}
	var body map[string]any
	json.Unmarshal(e.last("queues.get_all").Body, &body)
	if body["only_fields"] == nil || e.last("queues.get_all").Path != "/v2.5/queues.get_all" {
		t.Errorf("queues.get_all request = %s %v", e.last("queues.get_all").Path, body)
	}
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(nil)
	ctx := t.Context()
	queue, _, err := c.GetDefaultQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task := createTask(t, c, "train it")
	enqueue(t, c, task, queue)

	entry, err := c.GetNextTask(ctx, queue, 0)
	if err != nil || entry == nil || entry.Task != task {
		t.Fatalf("GetNextTask = %+v, %v, want task %s", entry, err, task)
	}
	if got := e.last("queues.get_next_task"); got.Path != "/v2.14/queues.get_next_task" || string(got.Body) != fmt.Sprintf(`{"queue":%q}`, queue) {
		t.Errorf("get_next_task request = %s %s (no wait_ms without a wait)", got.Path, got.Body)
	}
	if entry, err := c.GetNextTask(ctx, queue, 0); err != nil || entry != nil {
		t.Fatalf("GetNextTask on an empty queue = %+v, %v, want nil, nil", entry, err)
	}
	if _, err := c.GetNextTask(ctx, "no-such-queue", 0); !api.ErrInvalidQueueID.Is(err) || !apiclient.IsNotFound(err) {
		t.Errorf("GetNextTask on an unknown queue error = %v, want 400/701", err)
	}

	if err := c.SetStatus(ctx, "tasks.started", task, true, "", "pulled by agent", apiclient.Default); err != nil {
		t.Fatalf("SetStatus started: %v", err)
	}
	status, msg, err := c.TaskStatus(ctx, task)
	if err != nil || status != api.StatusInProgress || msg != "pulled by agent" {
		t.Fatalf("TaskStatus = %q, %q, %v", status, msg, err)
	}
	full, err := c.Task(ctx, task)
	if err != nil || full.ID != task || full.Name != "train it" || full.Status != api.StatusInProgress {
		t.Fatalf("Task = %+v, %v", full, err)
	}

	if err := c.EditRuntime(ctx, task, map[string]any{"_exec_agent_hostname": "testhost", "gone": 1}); err != nil {
		t.Fatalf("EditRuntime: %v", err)
	}
	if err := c.EditRuntime(ctx, task, map[string]any{"gone": nil, "progress": "50"}); err != nil {
		t.Fatalf("EditRuntime: %v", err)
	}
	full, _ = c.Task(ctx, task)
	if want := map[string]any{"_exec_agent_hostname": "testhost", "progress": "50"}; !reflect.DeepEqual(full.Runtime, want) {
		t.Errorf("runtime = %v, want %v", full.Runtime, want)
	}
	if got := e.last("tasks.edit"); got.Path != "/tasks.edit" {
		t.Errorf("runtime edit path = %s, want unversioned", got.Path)
	}
	if err := c.Ping(ctx, task); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// Dequeue: the execute step's safety net for a task still queued.
	second := createTask(t, c, "second")
	enqueue(t, c, second, queue)
	if n, err := c.Dequeue(ctx, second); err != nil || n != 1 {
		t.Fatalf("Dequeue = %d, %v, want 1", n, err)
	}
	if status, _, _ := c.TaskStatus(ctx, second); status != api.StatusInProgress {
		t.Errorf("status after Dequeue = %q, want in_progress", status)
	}
	if entry, _ := c.GetNextTask(ctx, queue, 0); entry != nil {
		t.Errorf("dequeued task still in the queue: %+v", entry)
	}

	for _, ep := range []string{"tasks.stopped", "tasks.failed", "tasks.completed"} {
		if err := c.SetStatus(ctx, ep, second, true, "worker execution done", "", apiclient.Final); err != nil {
			t.Errorf("SetStatus %s: %v", ep, err)
		}
	}
	if status, _, _ := c.TaskStatus(ctx, second); status != api.StatusCompleted {
		t.Errorf("final status = %q, want completed", status)
	}
	if got := e.last("tasks.completed"); got.Path != "/v2.5/tasks.completed" {
		t.Errorf("status path = %s", got.Path)
	}
	if err := c.SetStatus(ctx, "tasks.reset", second, true, "", "", apiclient.Default); err == nil {
		t.Error("SetStatus accepted tasks.reset")
	}

	missing := "0123456789abcdef0123456789abcdef"
	notFound := []struct {
		name string
		call func() error
	}{
		{"TaskStatus", func() error { _, _, err := c.TaskStatus(ctx, missing); return err }},
		{"Task", func() error { _, err := c.Task(ctx, missing); return err }},
		{"EditRuntime", func() error { return c.EditRuntime(ctx, missing, map[string]any{"a": 1}) }},
		{"SetStatus", func() error { return c.SetStatus(ctx, "tasks.started", missing, true, "", "", apiclient.Default) }},
	}
	for _, tt := range notFound {
		if err := tt.call(); !apiclient.IsNotFound(err) || apiclient.IsRetryable(err) {
			t.Errorf("%s of a missing task: error = %v, want IsNotFound", tt.name, err)
		}
	}
	if _, _, err := c.TaskStatus(ctx, missing); !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("TaskStatus of a missing task: %v, want ErrNotFound", err)
	}
}

func TestLongPoll(t *testing.T) {
	t.Parallel()
	polling := make(chan struct{})
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "queues.get_next_task" && n == 1 {
			close(polling)
		}
		return false
	})
	c := e.client(nil)
	ctx := t.Context()
	queue, _, err := c.GetDefaultQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task := createTask(t, c, "late arrival")

	type result struct {
		entry *api.QueueEntry
		err   error
		took  time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		entry, err := c.GetNextTask(ctx, queue, 20000)
		done <- result{entry, err, time.Since(start)}
	}()
	// Enqueue once the poll has reached the server. (Whether the server
	// is already waiting then or not, the answer is the task; the server's
	// tests check that an enqueue wakes a waiting poll.)
	select {
	case <-polling:
	case r := <-done:
		t.Fatalf("long poll returned before the enqueue: %+v", r)
	}
	enqueue(t, c, task, queue)
	r := <-done
	if r.err != nil || r.entry == nil || r.entry.Task != task {
		t.Fatalf("long poll = %+v, %v, want task %s", r.entry, r.err, task)
	}
	if r.took > 10*time.Second {
		t.Errorf("long poll took %v; it should return when the task arrives", r.took)
	}
	var body map[string]any
	json.Unmarshal(e.last("queues.get_next_task").Body, &body)
	if body["wait_ms"] != float64(20000) {
		t.Errorf("get_next_task body = %v, want wait_ms 20000", body)
	}
}

func TestLongPollOutlastsRequestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(func(cfg *apiclient.Config) { cfg.RequestTimeout = 300 * time.Millisecond })
	queue, _, err := c.GetDefaultQueue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	entry, err := c.GetNextTask(t.Context(), queue, 1200)
	if err != nil || entry != nil {
		t.Fatalf("GetNextTask = %+v, %v, want an empty answer after the wait", entry, err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("server answered after %v, want about the 1.2s wait", took)
	}
	if n := e.count("queues.get_next_task"); n != 1 {
		t.Errorf("requests = %d, want 1 (the wait extends the attempt timeout)", n)
	}
}

func TestWorkerMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(nil)
	ctx := t.Context()
	queue, _, err := c.GetDefaultQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task := createTask(t, c, "watched")
	const worker = "testhost:0"
	if err := c.RegisterWorker(ctx, worker, []string{queue}, nil); err != nil {
		t.Fatalf("RegisterWorker: %v", err)
	}
	if got := e.last("workers.register"); got.Path != "/workers.register" || string(got.Body) != fmt.Sprintf(`{"queues":[%q],"worker":%q}`, queue, worker) {
		t.Errorf("register request = %s %s", got.Path, got.Body)
	}
	if err := c.RegisterWorker(ctx, worker, []string{"no-such-queue"}, nil); !api.ErrInvalidQueueID.Is(err) {
		t.Errorf("RegisterWorker with an unknown queue: %v, want 400/701", err)
	}

	stamp := time.UnixMilli(1717000000123)
	reports := []struct {
		name string
		r    apiclient.StatusReport
		want string
	}{
		{name: "idle", r: apiclient.StatusReport{Worker: worker, Queues: []string{queue}, Timestamp: stamp},
			want: fmt.Sprintf(`{"worker":%q,"timestamp":1717000000123,"machine_stats":null,"tags":null,"is_daemon":true,"queues":[%q]}`, worker, queue)},
		{name: "running", r: apiclient.StatusReport{Worker: worker, Task: task, Queue: queue, Tags: []string{}, Timestamp: stamp,
			MachineStats: map[string]any{"cpu_usage": []float64{12.5}, "memory_used": 1024}},
			want: fmt.Sprintf(`{"worker":%q,"timestamp":1717000000123,"machine_stats":{"cpu_usage":[12.5],"memory_used":1024},"tags":[],"is_daemon":true,"task":%q,"queue":%q}`, worker, task, queue)},
		{name: "empty queue list", r: apiclient.StatusReport{Worker: worker, Queues: []string{}, Timestamp: stamp},
			want: fmt.Sprintf(`{"worker":%q,"timestamp":1717000000123,"machine_stats":null,"tags":null,"is_daemon":true,"queues":[]}`, worker)},
	}
	for _, tt := range reports {
		if err := c.StatusReport(ctx, tt.r); err != nil {
			t.Fatalf("StatusReport %s: %v", tt.name, err)
		}
		if got := e.last("workers.status_report"); string(got.Body) != tt.want || got.Path != "/workers.status_report" {
			t.Errorf("%s report = %s %s\nwant %s", tt.name, got.Path, got.Body, tt.want)
		}
	}
	if err := c.StatusReport(ctx, apiclient.StatusReport{Worker: worker, Task: task, Queue: queue}); err != nil {
		t.Fatal(err)
	}
	if ids := workerTasks(t, c); ids[worker] != task {
		t.Errorf("workers.get_all = %v, want %s running %s", ids, worker, task)
	}
	if full, _ := c.Task(ctx, task); full.LastWorker != worker {
		t.Errorf("task last_worker = %q, want %q", full.LastWorker, worker)
	}
	if err := c.UnregisterWorker(ctx, worker); err != nil {
		t.Fatalf("UnregisterWorker: %v", err)
	}
	if ids := workerTasks(t, c); len(ids) != 0 {
		t.Errorf("workers after unregister = %v, want none", ids)
	}
}

// workerTasks lists the registered workers and the task each runs.
func workerTasks(t *testing.T, c *apiclient.Client) map[string]string {
	t.Helper()
	var resp struct {
		Workers []struct {
			ID   string `json:"id"`
			Task *struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"workers"`
	}
	if err := c.Call(t.Context(), "2.5", "workers.get_all", map[string]any{}, &resp, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, w := range resp.Workers {
		out[w.ID] = ""
		if w.Task != nil {
			out[w.ID] = w.Task.ID
		}
	}
	return out
}

func TestAddEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(nil)
	ctx := t.Context()
	task := createTask(t, c, "chatty")
	logLine := func(task, msg string) []byte {
		b, _ := json.Marshal(map[string]any{"type": "log", "task": task, "level": "INFO", "msg": msg, "worker": "testhost", "timestamp": 1717000000000})
		return b
	}
	tests := []struct {
		name       string
		lines      [][]byte
		wantAdded  int
		wantErrs   int
		wantErr    bool
		wantPosted bool
	}{
		{name: "all good", lines: [][]byte{logLine(task, "one"), logLine(task, "two"), append(logLine(task, "three"), '\n')}, wantAdded: 3, wantPosted: true},
		{name: "one unknown task", lines: [][]byte{logLine(task, "four"), logLine("nope", "lost")}, wantAdded: 1, wantErrs: 1, wantPosted: true},
		{name: "none accepted", lines: [][]byte{logLine("nope", "a"), logLine("nope", "b")}, wantErrs: 2, wantErr: true, wantPosted: true},
		{name: "nothing to send", lines: [][]byte{nil, []byte("  ")}},
	}
	for _, tt := range tests {
		before := e.count("events.add_batch")
		added, errs, err := c.AddEvents(ctx, tt.lines, apiclient.Final)
		if added != tt.wantAdded || errs != tt.wantErrs || (err != nil) != tt.wantErr {
			t.Errorf("%s: AddEvents = %d, %d, %v, want %d, %d, error %v", tt.name, added, errs, err, tt.wantAdded, tt.wantErrs, tt.wantErr)
		}
		if tt.wantErr && !api.ErrEventsNotAdded.Is(err) {
			t.Errorf("%s: error = %v, want 400/131", tt.name, err)
		}
		posted := e.count("events.add_batch") > before
		if posted != tt.wantPosted {
			t.Errorf("%s: posted = %v, want %v", tt.name, posted, tt.wantPosted)
		}
	}
	got := e.last("events.add_batch")
	if got.Method != http.MethodPost || got.Path != "/events.add_batch" || got.Header.Get("Content-Type") != "application/json-lines" {
		t.Errorf("add_batch request = %s %s %q", got.Method, got.Path, got.Header.Get("Content-Type"))
	}
	if _, _, err := c.AddEvents(ctx, [][]byte{[]byte("{\"a\":\n1}")}, apiclient.Once); err == nil {
		t.Error("AddEvents accepted an event spanning two lines")
	}
}
