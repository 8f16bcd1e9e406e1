package server_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// TestKillNineLosesNoAcknowledgedWrite: a server process under load
// (1,000 tasks.create + tasks.enqueue from 8 clients) is killed with
// SIGKILL when about 400 enqueues were acknowledged, then started again on
// the same data (SQLite file, with each synchronous setting; PostgreSQL
// database). Every acknowledged
// create exists; every acknowledged enqueue left its task queued and in the
// queue exactly once; and nothing is half written: no queued task is
// missing from the queue, no entry names a task that is not queued.
func TestKillNineLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs, kills and restarts server processes under load")
	}
	t.Parallel()
	for _, backend := range []string{"sqlite", "sqlite-sync-full", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var extra []string
			switch backend {
			case "postgres":
				extra = []string{"--db", pgtest.NewDatabase(t)}
			case "sqlite-sync-full":
				extra = []string{"--sqlite-sync", "full"}
			}
			dir := filepath.Join(t.TempDir(), "data")
			s := testbin.StartServer(t, dir, extra...)
			created, enqueued := enqueueUntilKilled(t, s, 1000, 400)
			if len(enqueued) < 400 {
				t.Fatalf("only %d enqueues acknowledged before the kill", len(enqueued))
			}
			t.Logf("killed after %d creates and %d enqueues acknowledged", len(created), len(enqueued))

			again := testbin.StartServer(t, dir, extra...)
			checkAfterCrash(t, newProcClient(t, again), created, enqueued)
		})
	}
}

// enqueueUntilKilled creates and enqueues up to total tasks from 8
// clients and kills the server with SIGKILL once killAt enqueues were
// acknowledged. It returns the ids whose create and whose enqueue got a
// 200.
func enqueueUntilKilled(t *testing.T, s *testbin.Server, total, killAt int) (map[string]bool, map[string]bool) {
	t.Helper()
	pc := newProcClient(t, s)
	var queue struct{ ID string }
	if err := pc.call("queues.get_default", nil, &queue); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		next    atomic.Int64
		acked   atomic.Int64
		killed  = make(chan struct{})
		kill    sync.Once
		wg      sync.WaitGroup
		created = map[string]bool{}
		queued  = map[string]bool{}
	)
	doKill := func() {
		kill.Do(func() {
			if err := syscall.Kill(s.Pid(), syscall.SIGKILL); err != nil {
				t.Errorf("killing the server: %v", err)
			}
			close(killed)
		})
	}
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(total) {
				var res api.IDResponse
				if err := pc.call("tasks.create", map[string]any{"name": "crash task", "type": "training"}, &res); err != nil {
					return // the server is gone
				}
				mu.Lock()
				created[res.ID] = true
				mu.Unlock()
				m, _, err := pc.callMeta("tasks.enqueue", map[string]any{"task": res.ID, "queue": queue.ID})
				if err != nil {
					return
				}
				if m.ResultCode != 200 {
					t.Errorf("tasks.enqueue: %d/%d %s", m.ResultCode, m.ResultSubcode, m.ResultMsg)
					return
				}
				mu.Lock()
				queued[res.ID] = true
				mu.Unlock()
				if acked.Add(1) == int64(killAt) {
					doKill()
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("all %d tasks were enqueued before the kill", total)
	}
	return created, queued
}

// checkAfterCrash checks the restarted server's tasks and queue.
func checkAfterCrash(t *testing.T, pc *procClient, created, enqueued map[string]bool) {
	t.Helper()
	status := map[string]string{}
	for page := 0; ; page++ {
		var tasks struct {
			Tasks []struct{ ID, Status string }
		}
		body := map[string]any{"search_hidden": true, "only_fields": []string{"id", "status"}, "page": page, "page_size": 500, "order_by": []string{"id"}}
		if err := pc.call("tasks.get_all", body, &tasks); err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks.Tasks {
			status[tk.ID] = tk.Status
		}
		if len(tasks.Tasks) < 500 {
			break
		}
	}
	var queues struct {
		Queues []struct {
			ID      string
			Entries []struct{ Task string }
		}
	}
	if err := pc.call("queues.get_all", map[string]any{"search_hidden": true, "max_task_entries": 100000}, &queues); err != nil {
		t.Fatal(err)
	}
	entries := map[string]int{}
	for _, q := range queues.Queues {
		for _, e := range q.Entries {
			entries[e.Task]++
		}
	}
	var problems []string
	for id := range created {
		if _, ok := status[id]; !ok {
			problems = append(problems, fmt.Sprintf("acknowledged create of %s lost", id))
		}
	}
	for id := range enqueued {
		if status[id] != api.StatusQueued || entries[id] != 1 {
			problems = append(problems, fmt.Sprintf("acknowledged enqueue of %s: status %q, %d queue entries", id, status[id], entries[id]))
		}
	}
	for id, st := range status {
		if (st == api.StatusQueued) != (entries[id] > 0) || entries[id] > 1 {
			problems = append(problems, fmt.Sprintf("task %s half written: status %s, %d queue entries", id, st, entries[id]))
		}
	}
	for id := range entries {
		if _, ok := status[id]; !ok {
			problems = append(problems, fmt.Sprintf("queue entry for missing task %s", id))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... %d in all", len(problems)))
		}
		t.Fatalf("after the restart:\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("after the restart: %d tasks, %d queued, all %d acknowledged enqueues present", len(status), len(entries), len(enqueued))
}
