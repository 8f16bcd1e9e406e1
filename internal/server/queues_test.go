package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

func TestQueuesCRUD(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		def := c.ok("queues.get_default", nil)
		if def["name"] != "default" || len(str(def["id"])) != 32 {
			t.Fatalf("default queue = %v", def)
		}
		gpu := c.ok("queues.create", map[string]any{"name": "GPU-queue", "tags": []string{"b", "a"}})["id"].(string)
		c.fail("queues.create", map[string]any{"name": "GPU-queue"}, 400, 801)
		c.fail("queues.create", map[string]any{"name": "ab"}, 400, 800)
		c.fail("queues.create", map[string]any{}, 400, 11)
		// The agent resolves names with an unanchored, escaped regex at v2.5.
		res := c.at("2.5").ok("queues.get_all", map[string]any{"name": "GPU\\-queue", "only_fields": []string{"name", "id"}, "search_hidden": true})
		qs := res["queues"].([]any)
		if len(qs) != 1 || qs[0].(map[string]any)["id"] != gpu || len(qs[0].(map[string]any)) != 2 {
			t.Fatalf("queues by name = %v", qs)
		}
		full := c.at("2.5").ok("queues.get_all", map[string]any{"id": []string{gpu}})["queues"].([]any)[0].(map[string]any)
		if tags := full["tags"].([]any); tags[0] != "a" || tags[1] != "b" {
			t.Fatalf("tags not sorted: %v", tags)
		}
		if md, ok := full["metadata"].([]any); !ok || len(md) != 0 {
			t.Fatalf("v2.5 metadata = %#v, want []", full["metadata"])
		}
		// Hidden queues only show when asked for.
		c.ok("queues.update", map[string]any{"queue": gpu, "tags": []string{"k8s-glue"}})
		if n := len(c.ok("queues.get_all", nil)["queues"].([]any)); n != 1 {
			t.Fatalf("unfiltered get_all shows %d queues, want the default only", n)
		}
		if n := len(c.ok("queues.get_all", map[string]any{"search_hidden": true})["queues"].([]any)); n != 2 {
			t.Fatalf("search_hidden get_all shows %d queues", n)
		}
		// add_task makes a created task queued (a task waits in a queue only
		// while queued; upstream leaves the status alone), remove_task with
		// update_task_status puts it back; delete needs force when not empty.
		id := c.createTask("queued by hand")
		c.ok("queues.add_task", map[string]any{"queue": gpu, "task": id})
		c.fail("queues.add_task", map[string]any{"queue": gpu, "task": id}, 400, 706)
		if head := c.ok("queues.peek_task", map[string]any{"queue": gpu})["task"]; head != id {
			t.Fatalf("peek = %v", head)
		}
		if st := c.task(id)["status"]; st != "queued" {
			t.Fatalf("status after add_task = %v, want queued", st)
		}
		c.fail("queues.delete", map[string]any{"queue": gpu}, 400, 702)
		c.ok("queues.remove_task", map[string]any{"queue": gpu, "task": id, "update_task_status": true})
		c.fail("queues.remove_task", map[string]any{"queue": gpu, "task": id}, 400, 703)
		if st := c.task(id)["status"]; st != "created" {
			t.Fatalf("status after remove_task with update_task_status = %v, want created", st)
		}
		// A task that may not be enqueued is not added.
		done := c.createTask("finished task")
		c.ok("tasks.started", map[string]any{"task": done})
		c.ok("tasks.completed", map[string]any{"task": done})
		c.fail("queues.add_task", map[string]any{"queue": gpu, "task": done}, 400, 110)
		if n := c.ok("queues.get_num_entries", map[string]any{"queue": gpu})["num"]; n != 0.0 {
			t.Fatalf("refused add_task left %v entries", n)
		}
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": gpu})
		c.ok("queues.delete", map[string]any{"queue": gpu, "force": true})
		if tk := c.task(id); tk["status"] != "created" {
			t.Fatalf("task of a force-deleted queue = %v", tk["status"])
		}
		c.fail("queues.get_by_id", map[string]any{"queue": gpu}, 400, 701)
		c.fail("queues.get_next_task", map[string]any{"queue": gpu}, 400, 701)
	})
}

func TestQueueFIFOAndStoppedRepair(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		var ids []string
		for range 5 {
			id := c.createTask("fifo task")
			c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
			ids = append(ids, id)
		}
		entries := c.ok("queues.get_by_id", map[string]any{"queue": q, "max_task_entries": 2})["queue"].(map[string]any)["entries"].([]any)
		if len(entries) != 2 || entries[0].(map[string]any)["task"] != ids[0] {
			t.Fatalf("entries = %v", entries)
		}
		// A queued task forced to another status leaves the queue with it.
		c.ok("tasks.stopped", map[string]any{"task": ids[0], "force": true})
		// A stopped task found in a queue (possible in a database written
		// by an earlier version, where an abort could race with the
		// enqueue) goes back to queued when popped, as upstream: by a pop
		// that asks for the owner (one transaction) and by a plain one
		// (the pop, then the repair).
		err := c.ts.Store.Update(context.Background(), func(tx store.Tx) error {
			for _, id := range ids[1:3] {
				task, err := tx.Task(id)
				if err != nil {
					return err
				}
				task.Status = api.StatusStopped
				if err := tx.PutTask(task); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range ids[1:] {
			withInfo := i%2 == 0
			got := c.ok("queues.get_next_task", map[string]any{"queue": q, "get_task_info": withInfo})
			entry := got["entry"].(map[string]any)
			if entry["task"] != want {
				t.Fatalf("pop %d = %v, want %s", i, got, want)
			}
			if info, _ := got["task_info"].(map[string]any); withInfo != (info != nil) || withInfo && info["user"] == "" {
				t.Fatalf("pop %d (get_task_info %v) = %v", i, withInfo, got)
			}
		}
		if got := c.ok("queues.get_next_task", map[string]any{"queue": q}); got["entry"] != nil {
			t.Fatalf("pop after the four queued tasks = %v, want none", got)
		}
		if st := c.task(ids[0])["status"]; st != "stopped" {
			t.Fatalf("forced-stopped task is %v, want stopped", st)
		}
		for _, id := range ids[1:3] {
			if st := c.task(id)["status"]; st != "queued" {
				t.Fatalf("stopped task %s popped as %v, want queued", id, st)
			}
		}
	})
}

// TestLongPollWakesOnEnqueue checks our long-poll extension: a waiting
// get_next_task returns as soon as a task is enqueued.
func TestLongPollWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q := c.defaultQueue()
		id := c.createTask("long polled")
		answer := parkLongPoll(t, c, q, 20000)
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		got, waited := answer()
		if got["entry"] == nil || got["entry"].(map[string]any)["task"] != id {
			t.Fatalf("long poll = %v", got)
		}
		if waited > 10*time.Second {
			t.Fatalf("long poll returned after %v, not on the enqueue", waited)
		}
		// Without a task it answers {} once the wait is over.
		if empty := c.ok("queues.get_next_task", map[string]any{"queue": q, "wait_ms": 50}); len(empty) != 0 {
			t.Fatalf("empty long poll = %v", empty)
		}
	})
}

// A projection without entries (a daemon reads its queues' tags on every
// pass) leaves them out; one that names them, or none, has them.
func TestQueuesGetAllProjection(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		q, ids := queueWith(c, 3)
		got := c.ok("queues.get_all", map[string]any{"id": []string{q}, "only_fields": []string{"id", "tags"}})["queues"].([]any)
		if len(got) != 1 {
			t.Fatalf("queues = %v", got)
		}
		if doc := got[0].(map[string]any); doc["id"] != q || doc["entries"] != nil {
			t.Fatalf("projection without entries = %v", doc)
		}
		for _, fields := range [][]string{{"id", "entries"}, {"name", "entries"}, nil} {
			body := map[string]any{"id": []string{q}}
			if fields != nil {
				body["only_fields"] = fields
			}
			doc := c.ok("queues.get_all", body)["queues"].([]any)[0].(map[string]any)
			entries, _ := doc["entries"].([]any)
			if len(entries) != len(ids) {
				t.Fatalf("only_fields %v: entries = %v", fields, doc["entries"])
			}
		}
	})
}

// parkLongPoll starts a queues.get_next_task long poll of waitMS on queue
// and returns once the server has found the queue empty and waits; the
// returned func waits for the answer and says how long the poll took.
func parkLongPoll(t *testing.T, c *client, queue string, waitMS int) func() (map[string]any, time.Duration) {
	t.Helper()
	waiting := make(chan struct{}, 1)
	server.OnLongPollWait(c.ts.Srv, func(string) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})
	var wg sync.WaitGroup
	var got map[string]any
	var waited time.Duration
	wg.Go(func() {
		start := time.Now()
		got = c.ok("queues.get_next_task", map[string]any{"queue": queue, "wait_ms": waitMS})
		waited = time.Since(start)
	})
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll never waited")
	}
	return func() (map[string]any, time.Duration) { wg.Wait(); return got, waited }
}

// TestPopChecksAndSkips: a pop takes only from the caller's company's
// queues (one of another company is an invalid queue, full or empty, and
// keeps its entries); an entry whose task was deleted behind the server's
// back is dropped and the next one handed out; an enqueue to another queue
// moves the task.
func TestPopChecksAndSkips(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		ctx := context.Background()
		q := c.defaultQueue()
		gone, kept := c.createTask("deleted while queued"), c.createTask("next in line")
		for _, id := range []string{gone, kept} {
			c.ok("tasks.enqueue", map[string]any{"task": id, "queue": q})
		}
		foreign := c.createTask("of another company")
		err := c.ts.Store.Update(ctx, func(tx store.Tx) error {
			for _, id := range []string{"q-other-full", "q-other-empty"} {
				if _, err := tx.InsertQueue(&api.Queue{ID: id, Name: id, Company: "another-company"}); err != nil {
					return err
				}
			}
			if _, err := tx.AddEntry("q-other-full", foreign, api.Now()); err != nil {
				return err
			}
			return tx.DeleteTask(gone)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"q-other-full", "q-other-empty", "q-missing"} {
			c.fail("queues.get_next_task", map[string]any{"queue": other}, 400, api.ErrInvalidQueueID.Subcode)
			// An enqueue there is refused and writes nothing; the queue is
			// the error named first, before the status's (a task in
			// progress cannot be enqueued without force).
			c.fail("tasks.enqueue", map[string]any{"task": kept, "queue": other}, 400, api.ErrInvalidQueueID.Subcode)
			running := c.createTask("running")
			c.ok("tasks.started", map[string]any{"task": running, "force": true})
			c.fail("tasks.enqueue", map[string]any{"task": running, "queue": other}, 400, api.ErrInvalidQueueID.Subcode)
			if st := c.task(running)["status"]; st != "in_progress" {
				t.Fatalf("task enqueued to %s: status %v", other, st)
			}
		}
		if st, q := c.task(kept)["status"], c.task(kept)["execution"]; st != "queued" || q.(map[string]any)["queue"] != c.defaultQueue() {
			t.Fatalf("task after enqueues to invalid queues: %v, %v", st, q)
		}
		err = c.ts.Store.View(ctx, func(tx store.Tx) error {
			if n, err := tx.CountEntries("q-other-full"); err != nil || n != 1 {
				t.Errorf("the other company's queue holds %d entries (%v), want 1", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := c.ok("queues.get_next_task", map[string]any{"queue": q})
		if e, _ := got["entry"].(map[string]any); e == nil || e["task"] != kept {
			t.Fatalf("pop = %v, want %s (the deleted task's entry skipped)", got, kept)
		}
		if got := c.ok("queues.get_next_task", map[string]any{"queue": q}); got["entry"] != nil {
			t.Fatalf("pop of the emptied queue = %v", got)
		}

		// Enqueued to a second queue, a queued task leaves the first.
		second := c.ok("queues.create", map[string]any{"name": "second"})["id"].(string)
		moved := c.createTask("moved")
		c.ok("tasks.enqueue", map[string]any{"task": moved, "queue": q})
		c.ok("tasks.enqueue", map[string]any{"task": moved, "queue": second})
		c.fail("tasks.enqueue", map[string]any{"task": moved, "queue": second}, 400, api.ErrTaskAlreadyQueued.Subcode)
		for queue, want := range map[string]int{q: 0, second: 1} {
			entries := c.ok("queues.get_by_id", map[string]any{"queue": queue})["queue"].(map[string]any)["entries"].([]any)
			if len(entries) != want {
				t.Fatalf("queue %s has %d entries, want %d: %v", queue, len(entries), want, entries)
			}
		}
	})
}
