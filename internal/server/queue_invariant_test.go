package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// callMeta sends one request and returns the answer's meta and data
// whatever its result code; err is set only when no envelope came back.
func (pc *procClient) callMeta(endpoint string, body any) (api.Meta, json.RawMessage, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("GET", pc.url+"/"+endpoint, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+pc.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := pc.http.Do(req)
	if err != nil {
		return api.Meta{}, nil, err
	}
	defer resp.Body.Close()
	var env api.Envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return api.Meta{}, nil, fmt.Errorf("%s: decoding: %w", endpoint, err)
	}
	return env.Meta, env.Data, nil
}

// queueState reads every task's status and every queue's entries through
// the API and checks the invariant "a task is in a queue iff its status is
// queued", and that no task is twice in one queue.
func checkQueueInvariant(t *testing.T, pc *procClient, taskIDs []string) {
	t.Helper()
	var tasks struct {
		Tasks []struct{ ID, Status string }
	}
	if err := pc.call("tasks.get_all", map[string]any{"id": taskIDs, "only_fields": []string{"id", "status"}}, &tasks); err != nil {
		t.Fatal(err)
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
	inQueues := map[string]int{}
	for _, q := range queues.Queues {
		seen := map[string]bool{}
		for _, e := range q.Entries {
			if seen[e.Task] {
				t.Errorf("task %s is twice in queue %s", e.Task, q.ID)
			}
			seen[e.Task] = true
			inQueues[e.Task]++
		}
	}
	if len(tasks.Tasks) != len(taskIDs) {
		t.Fatalf("tasks.get_all found %d of the %d tasks", len(tasks.Tasks), len(taskIDs))
	}
	bad := 0
	for _, tk := range tasks.Tasks {
		if (tk.Status == api.StatusQueued) != (inQueues[tk.ID] > 0) {
			bad++
			t.Errorf("task %s: status %s, in %d queues", tk.ID, tk.Status, inQueues[tk.ID])
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d tasks break \"in a queue iff queued\"", bad, len(taskIDs))
	}
}

// TestQueueMembershipFollowsStatus races queues.add_task against
// tasks.stop, tasks.reset, tasks.enqueue and tasks.dequeue from several
// clients on 40 tasks, against real server processes (one on SQLite; two on
// one PostgreSQL database), and then checks that every task is in a queue
// iff it is queued. Racing add_task against stop/reset used to leave 21 of
// 40 tasks in a queue while stopped or created.
func TestQueueMembershipFollowsStatus(t *testing.T) {
	t.Parallel()
	onServerProcesses(t, raceQueueOps)
}

func raceQueueOps(t *testing.T, servers []*procClient) {
	const tasks, clients, opsPerClient = 40, 6, 150
	pc := servers[0]
	var def struct{ ID string }
	if err := pc.call("queues.get_default", nil, &def); err != nil {
		t.Fatal(err)
	}
	var other api.IDResponse
	if err := pc.call("queues.create", map[string]any{"name": "second queue"}, &other); err != nil {
		t.Fatal(err)
	}
	queues := []string{def.ID, other.ID}
	ids := make([]string, tasks)
	for i := range ids {
		var created api.IDResponse
		if err := pc.call("tasks.create", map[string]any{"name": fmt.Sprintf("raced task %d", i), "type": "training"}, &created); err != nil {
			t.Fatal(err)
		}
		ids[i] = created.ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := range clients {
		wg.Go(func() {
			pc := servers[cl%len(servers)]
			rnd := rand.New(rand.NewPCG(uint64(cl), 7))
			for range opsPerClient {
				task := ids[rnd.IntN(len(ids))]
				queue := queues[rnd.IntN(len(queues))]
				var endpoint string
				var body map[string]any
				// Half the calls add to a queue; the rest change the status.
				switch op := rnd.IntN(8); {
				case op < 4:
					endpoint, body = "queues.add_task", map[string]any{"queue": queue, "task": task}
				case op == 4:
					endpoint, body = "tasks.stop", map[string]any{"task": task, "force": true}
				case op == 5:
					endpoint, body = "tasks.reset", map[string]any{"task": task, "force": true}
				case op == 6:
					endpoint, body = "tasks.enqueue", map[string]any{"task": task, "queue": queue}
				default:
					endpoint, body = "tasks.dequeue", map[string]any{"task": task}
				}
				m, _, err := pc.callMeta(endpoint, body)
				if err == nil && m.ResultCode >= 500 {
					err = fmt.Errorf("%s: %d/%d %s", endpoint, m.ResultCode, m.ResultSubcode, m.ResultMsg)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range servers {
		checkQueueInvariant(t, s, ids)
	}
}
