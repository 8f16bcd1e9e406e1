package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// leaseServer is a test server with a 10 s lease and a hand-moved clock.
func leaseServer(t *testing.T, dsn string) (*client, *testClock) {
	clock := &testClock{now: time.Now().UTC()}
	return newTestServer(t, dsn, server.Options{Now: clock.Now, TokenTTL: 365 * 24 * time.Hour, LeaseTimeout: 10 * time.Second}), clock
}

// queueWith makes a queue holding n new tasks, in order.
func queueWith(c *client, n int) (queue string, tasks []string) {
	queue = freshQueue(c)
	for range n {
		id := c.createTask("leased")
		c.ok("tasks.enqueue", map[string]any{"task": id, "queue": queue})
		tasks = append(tasks, id)
	}
	return queue, tasks
}

// pop calls queues.get_next_task and returns the task and its lease.
func pop(c *client, queue string) (task, lease string) {
	c.t.Helper()
	got := c.ok("queues.get_next_task", map[string]any{"queue": queue})
	entry, _ := got["entry"].(map[string]any)
	l, _ := got["lease"].(map[string]any)
	if entry == nil || l == nil || str(l["id"]) == "" || l["timeout_sec"] != 10.0 {
		c.t.Fatalf("get_next_task = %v, want an entry with a 10 s lease", got)
	}
	return str(entry["task"]), str(l["id"])
}

// queueOrder lists a queue's tasks, head first.
func queueOrder(c *client, queue string) []string {
	c.t.Helper()
	var out []string
	q := c.ok("queues.get_by_id", map[string]any{"queue": queue})["queue"].(map[string]any)
	for _, e := range q["entries"].([]any) {
		out = append(out, str(e.(map[string]any)["task"]))
	}
	return out
}

func expire(t *testing.T, c *client, want int) {
	t.Helper()
	if n, err := c.ts.Srv.ExpireLeases(context.Background()); err != nil || n != want {
		t.Fatalf("ExpireLeases = %d, %v; want %d", n, err, want)
	}
}

func sameOrder(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// A hand-out nobody acknowledges (its answer was lost: a proxy, a killed
// server or daemon) goes back to the head of its queue, in its old place
// relative to the others, when its lease runs out, and the task's log says
// so. The late acknowledgement of the expired hand-out is refused; the
// next hand-out, acknowledged in time, is final.
func TestLeaseExpiryPutsTheTaskBackInItsPlace(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c, clock := leaseServer(t, b.open(t))
			q, ids := queueWith(c, 4)
			first, lost1 := pop(c, q)
			second, lost2 := pop(c, q)
			if first != ids[0] || second != ids[1] {
				t.Fatalf("popped %s, %s; want %s, %s", first, second, ids[0], ids[1])
			}
			later := c.createTask("enqueued meanwhile")
			c.ok("tasks.enqueue", map[string]any{"task": later, "queue": q})
			clock.Advance(9 * time.Second)
			expire(t, c, 0) // not yet
			if got := queueOrder(c, q); !sameOrder(got, []string{ids[2], ids[3], later}) {
				t.Fatalf("queue while leased = %v", got)
			}
			clock.Advance(2 * time.Second)
			expire(t, c, 2)
			if got := queueOrder(c, q); !sameOrder(got, []string{ids[0], ids[1], ids[2], ids[3], later}) {
				t.Fatalf("queue after the leases ran out = %v, want %v then %s", got, ids, later)
			}
			if tk := c.task(first); tk["status"] != "queued" {
				t.Fatalf("task = %v", tk["status"])
			}
			if log := taskLogText(c, first); !strings.Contains(log, "not started within 10s") || !strings.Contains(log, "testhost") {
				t.Fatalf("task log does not say it went back:\n%s", log)
			}
			// The slow worker's acknowledgement comes too late.
			m := c.fail("tasks.started", map[string]any{"task": first, "force": true, "lease": lost1}, 400, api.ErrLeaseLost.Subcode)
			if !strings.Contains(m.ResultMsg, "expired") {
				t.Fatalf("refusal = %q", m.ResultMsg)
			}
			again, lease := pop(c, q)
			if again != first || lease == lost1 {
				t.Fatalf("popped %s with lease %s; want %s with a new lease", again, lease, first)
			}
			c.ok("tasks.started", map[string]any{"task": first, "force": true, "lease": lease})
			// Acknowledging the same hand-out again (a retry) is fine; the
			// older one is still refused.
			c.ok("tasks.started", map[string]any{"task": first, "force": true, "lease": lease, "status_message": "launch"})
			c.fail("tasks.started", map[string]any{"task": second, "force": true, "lease": lost2 + "x"}, 400, api.ErrLeaseLost.Subcode)
			clock.Advance(time.Minute)
			expire(t, c, 0)
			if got := queueOrder(c, q); !sameOrder(got, []string{ids[1], ids[2], ids[3], later}) {
				t.Fatalf("queue = %v: an acknowledged task came back", got)
			}
			if tk := c.task(first); tk["status"] != "in_progress" {
				t.Fatalf("acknowledged task = %v", tk["status"])
			}
			// An acknowledgement is remembered for ten minutes (a client's
			// retries end sooner), then forgotten.
			clock.Advance(10 * time.Minute)
			expire(t, c, 0)
			c.fail("tasks.started", map[string]any{"task": first, "force": true, "lease": lease}, 400, api.ErrLeaseLost.Subcode)
		})
	}
}

// Clients that know nothing of leases (the reference agent calls
// tasks.started right after the pop) acknowledge with tasks.started; a
// tasks.started from another worker while the hand-out is held is
// refused. A task stopped or dequeued while handed out stays out of the
// queue when the lease runs out.
func TestLeaseWithoutTheExtension(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c, clock := leaseServer(t, b.open(t))
			q, ids := queueWith(c, 3)
			a, b, cc := c.as("host-a:0"), c.as("host-b:0"), c.as("host-c:0")
			pop(a, q)
			a.ok("tasks.started", map[string]any{"task": ids[0], "force": true, "status_message": "pulled by agent"})
			pop(b, q)
			a.fail("tasks.started", map[string]any{"task": ids[1], "force": true}, 400, api.ErrLeaseLost.Subcode)
			b.ok("tasks.started", map[string]any{"task": ids[1], "force": true})
			_, held := pop(cc, q)
			cc.ok("tasks.stop", map[string]any{"task": ids[2], "force": true})
			// The holder's acknowledgement after the stop is refused: the
			// hand-out became moot.
			cc.fail("tasks.started", map[string]any{"task": ids[2], "force": true, "lease": held}, 400, api.ErrLeaseLost.Subcode)
			// The execute step's safety net (tasks.dequeue to in_progress)
			// settles a held hand-out too.
			extra := c.createTask("dequeued while handed out")
			c.ok("tasks.enqueue", map[string]any{"task": extra, "queue": q})
			_, dl := pop(a, q)
			a.ok("tasks.dequeue", map[string]any{"task": extra, "new_status": "in_progress"})
			a.ok("tasks.started", map[string]any{"task": extra, "force": true, "lease": dl})
			clock.Advance(time.Minute)
			expire(t, c, 0)
			if got := queueOrder(c, q); len(got) != 0 {
				t.Fatalf("queue = %v, want empty", got)
			}
			for i, want := range []string{"in_progress", "in_progress", "stopped"} {
				if tk := c.task(ids[i]); tk["status"] != want {
					t.Errorf("task %d = %v, want %s", i, tk["status"], want)
				}
			}
		})
	}
}

// A lease taken through one server replica runs out through another: the
// hand-outs live in the shared database.
func TestLeaseAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := backends[1].open(t)
	clock := &testClock{now: time.Now().UTC()}
	opts := server.Options{Now: clock.Now, TokenTTL: 365 * 24 * time.Hour, LeaseTimeout: 10 * time.Second}
	one, other := newTestServer(t, dsn, opts), newTestServer(t, dsn, opts)
	q, ids := queueWith(one, 2)
	task, lease := pop(one, q)
	clock.Advance(11 * time.Second)
	expire(t, other, 1)
	expire(t, one, 0)
	if got := queueOrder(one, q); !sameOrder(got, ids) {
		t.Fatalf("queue = %v, want %v", got, ids)
	}
	other.fail("tasks.started", map[string]any{"task": task, "force": true, "lease": lease}, 400, api.ErrLeaseLost.Subcode)
}

// taskLogText is a task's log messages, oldest first.
func taskLogText(c *client, task string) string {
	c.t.Helper()
	got := c.ok("events.get_task_log", map[string]any{"task": task, "batch_size": 100, "navigate_earlier": false})
	var b strings.Builder
	for _, e := range got["events"].([]any) {
		b.WriteString(str(e.(map[string]any)["msg"]) + "\n")
	}
	return b.String()
}
