package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// procClient is a small thread-safe API client for a server process.
type procClient struct {
	url   string
	token string
	http  *http.Client
}

func newProcClient(t testing.TB, s *testbin.Server) *procClient {
	t.Helper()
	// (The timeout is a fail-safe: on a loaded machine a 27 MiB add_batch
	// to a server on PostgreSQL has taken over a minute.)
	pc := &procClient{url: s.URL, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}}
	req, _ := http.NewRequest("GET", s.URL+"/auth.login", nil)
	req.SetBasicAuth(s.AccessKey, s.SecretKey)
	var out api.LoginResponse
	if err := pc.do(req, &out); err != nil {
		t.Fatalf("login: %v", err)
	}
	pc.token = out.Token
	return pc
}

func (pc *procClient) do(req *http.Request, out any) error {
	resp, err := pc.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env api.Envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: decoding: %w", req.URL.Path, err)
	}
	if env.Meta.ResultCode != 200 {
		return fmt.Errorf("%s: %d/%d %s", req.URL.Path, env.Meta.ResultCode, env.Meta.ResultSubcode, env.Meta.ResultMsg)
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

func (pc *procClient) call(endpoint string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("GET", pc.url+"/"+endpoint, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+pc.token)
	req.Header.Set("Content-Type", "application/json")
	return pc.do(req, out)
}

// TestConcurrentPollersDeliverEachTaskOnce drains 2,000 tasks with 20
// pollers while the tasks are being enqueued, against real server
// processes: one on SQLite, and two on one PostgreSQL database. Every task
// must be handed out exactly once.
func TestConcurrentPollersDeliverEachTaskOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("long: drains 2,000 tasks through real server processes")
	}
	t.Parallel()
	onServerProcesses(t, drain)
}

// onServerProcesses runs fn, in parallel subtests, against one server
// process on SQLite and against two server processes on one PostgreSQL
// database. The clients of these tests take tasks and never start them:
// the servers' hand-outs last an hour, so that a loaded machine (a run of
// more than the default 30 s) does not see a task come back to its queue
// and be handed out again, as it must in production.
func onServerProcesses(t *testing.T, fn func(t *testing.T, servers []*procClient)) {
	lease := []string{"--lease-timeout", "1h"}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s := testbin.StartServer(t, t.TempDir(), lease...)
		fn(t, []*procClient{newProcClient(t, s)})
	})
	t.Run("postgres-two-servers", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.NewDatabase(t)
		dir := t.TempDir()
		a := testbin.StartServer(t, filepath.Join(dir, "a"), append([]string{"--db", dsn}, lease...)...)
		b := testbin.StartServer(t, filepath.Join(dir, "b"), append([]string{"--db", dsn}, lease...)...)
		fn(t, []*procClient{newProcClient(t, a), newProcClient(t, b)})
	})
}

func drain(t *testing.T, servers []*procClient) {
	const tasks, pollers, producers = 2000, 20, 4
	var queue struct{ ID string }
	if err := servers[0].call("queues.get_default", nil, &queue); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		got       = map[string]int{}
		produced  atomic.Int64
		enqueued  = make(chan string, tasks)
		wg        sync.WaitGroup
		errs      = make(chan error, pollers+producers)
		producing atomic.Bool
	)
	producing.Store(true)
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Go(func() {
			pc := servers[p%len(servers)]
			for produced.Add(1) <= tasks {
				var created api.IDResponse
				if err := pc.call("tasks.create", map[string]any{"name": "drain task", "type": "training"}, &created); err != nil {
					errs <- err
					return
				}
				if err := pc.call("tasks.enqueue", map[string]any{"task": created.ID, "queue": queue.ID}, nil); err != nil {
					errs <- err
					return
				}
				enqueued <- created.ID
			}
		})
	}
	for p := range pollers {
		wg.Go(func() {
			pc := servers[p%len(servers)]
			for {
				// Read before the poll: an empty answer to a poll made
				// after the last enqueue means the queue is drained.
				more := producing.Load()
				var next api.GetNextTaskResponse
				// While the queue is empty the server holds the poll until
				// a task comes (or 100 ms pass: an enqueue through the
				// other server does not wake it).
				if err := pc.call("queues.get_next_task", map[string]any{"queue": queue.ID, "wait_ms": 100}, &next); err != nil {
					errs <- err
					return
				}
				if next.Entry == nil {
					if !more {
						return
					}
					continue
				}
				mu.Lock()
				got[next.Entry.Task]++
				mu.Unlock()
			}
		})
	}
	pwg.Wait()
	producing.Store(false)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(enqueued)
	n := 0
	for id := range enqueued {
		n++
		if got[id] != 1 {
			t.Errorf("task %s delivered %d times", id, got[id])
		}
	}
	if n != tasks || len(got) != tasks {
		t.Fatalf("enqueued %d, delivered %d distinct tasks; want %d", n, len(got), tasks)
	}
	var left struct{ Num int }
	if err := servers[0].call("queues.get_num_entries", map[string]any{"queue": queue.ID}, &left); err != nil || left.Num != 0 {
		t.Fatalf("queue left with %d entries (%v)", left.Num, err)
	}
}
