package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/pgtest"
)

// backend is a server process on SQLite or PostgreSQL, with a client
// whose connection pool suits many concurrent callers.
type backend struct {
	name   string
	st     *stack
	srv    *server
	api    *apiclient.Client
	pg     *pgtest.Cluster
	pgRoot int      // the postmaster's pid, for its CPU time
	extra  []string // the server's arguments after its data folder
	dsn    string   // PostgreSQL's; "" for SQLite
}

// restart stops the server (if it runs) and starts it again on the same
// data, with a second client that has a connection pool for many callers.
func (b *backend) restart(ctx context.Context) error {
	if b.srv != nil {
		b.srv.stop(20 * time.Second)
	}
	var err error
	if b.srv, err = b.st.startServer(ctx, b.extra...); err != nil {
		return err
	}
	b.api, err = newClient(ctx, b.srv.url, b.srv.access, b.srv.secret,
		&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}})
	return err
}

func (b *backend) close() {
	b.st.close()
	if b.pg != nil {
		b.pg.Stop()
	}
}

// errNoPostgres is a PostgreSQL scenario without PostgreSQL.
var errNoPostgres = errors.New("skipped: PostgreSQL server binaries (initdb, postgres) not found; install them or set PGTEST_BIN_DIR")

// startBackend starts a server on the named back end ("sqlite" or
// "postgres": a throwaway cluster, fsync off, as the tests run it).
func (r *runner) startBackend(ctx context.Context, name string, serverArgs ...string) (*backend, error) {
	st, err := newStack(r.root, "server-"+name, r.bin)
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, st: st}
	var extra []string
	if name == "postgres" {
		c, err := pgtest.Start(ctx)
		if errors.Is(err, pgtest.ErrNotInstalled) {
			st.close()
			return nil, errNoPostgres
		}
		if err != nil {
			st.close()
			return nil, fmt.Errorf("starting PostgreSQL: %w", err)
		}
		b.pg = c
		b.pgRoot = postmaster(c.Dir())
		dsn, err := c.CreateDatabase(ctx, "agentbench")
		if err != nil {
			b.close()
			return nil, err
		}
		extra = []string{"--db", dsn}
		b.dsn = dsn
	}
	extra = append(extra, serverArgs...)
	b.extra = extra
	if err := b.restart(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// postmaster finds the pid of the postgres process serving the cluster in
// dir (its command line names the data folder); 0 if none.
func postmaster(dir string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), dir) && strings.Contains(string(cmdline), "postgres") {
			if comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(comm)) == "postgres" {
				return pid
			}
		}
	}
	return 0
}

// pgCPU is the CPU time of the cluster's processes.
func (b *backend) pgCPU() time.Duration {
	if b.pgRoot == 0 {
		return 0
	}
	return treeCPU(b.pgRoot)
}

// runQueue: enqueue + get_next_task pairs over HTTP, with 1 and 8
// concurrent clients, on each back end.
func runQueue(ctx context.Context, r *runner) ([]Result, error) {
	var res []Result
	for _, name := range []string{"sqlite", "postgres"} {
		b, err := r.startBackend(ctx, name)
		if errors.Is(err, errNoPostgres) {
			res = append(res, Result{Metric: name + ": pairs/s", Skipped: err.Error()})
			continue
		}
		if err != nil {
			return res, err
		}
		for _, clients := range []int{1, 8} {
			n := r.size(4000, 1000)
			if clients == 1 {
				n /= 4
			}
			pairs, cpu, pgCPU, clientCPU, err := queuePairs(ctx, b, clients, n)
			if err != nil {
				b.close()
				return res, err
			}
			metric := fmt.Sprintf("%s: pairs/s, %d client", name, clients)
			if clients > 1 {
				metric += "s"
			}
			note := fmt.Sprintf("server CPU %.0f µs/pair", cpu.Seconds()*1e6/float64(n))
			if b.pg != nil {
				note += fmt.Sprintf(", PostgreSQL's %.0f µs/pair", pgCPU.Seconds()*1e6/float64(n))
			}
			note += fmt.Sprintf(", the clients' %.0f µs/pair", clientCPU.Seconds()*1e6/float64(n))
			res = append(res, Result{Metric: metric, Value: pairs, Unit: "pairs/s", N: n, Note: note})
		}
		b.close()
	}
	return res, nil
}

// queuePairs runs n enqueue + get_next_task pairs from the clients and
// returns the rate and the CPU time, during them, of the server, of
// PostgreSQL's processes (0 on SQLite) and of this process (the clients).
func queuePairs(ctx context.Context, b *backend, clients, n int) (pairsPerSec float64, serverCPU, pgCPU, clientCPU time.Duration, err error) {
	c := b.api
	id, _, err := c.GetDefaultQueue(ctx)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("finding the default queue: %w", err)
	}
	work := make(chan string, n)
	for range n {
		var created api.IDResponse
		if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": "bench task", "type": "training"}, &created, apiclient.Default); err != nil {
			return 0, 0, 0, 0, fmt.Errorf("creating a task: %w", err)
		}
		work <- created.ID
	}
	close(work)
	before, err := procCPU(b.srv.pid())
	if err != nil {
		return 0, 0, 0, 0, err
	}
	pgBefore := b.pgCPU()
	clientBefore, err := procCPU(os.Getpid())
	if err != nil {
		return 0, 0, 0, 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	for range clients {
		wg.Go(func() {
			for task := range work {
				if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": task, "queue": id}, nil, apiclient.Default); err != nil {
					fail(fmt.Errorf("enqueueing: %w", err))
					return
				}
				// With several clients another one may take this task;
				// the queue then holds one of theirs.
				for {
					var next api.GetNextTaskResponse
					if err := c.Call(ctx, "", "queues.get_next_task", map[string]any{"queue": id}, &next, apiclient.Default); err != nil {
						fail(fmt.Errorf("dequeueing: %w", err))
						return
					}
					if next.Entry != nil {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return 0, 0, 0, 0, first
	}
	after, err := procCPU(b.srv.pid())
	if err != nil {
		return 0, 0, 0, 0, err
	}
	clientAfter, err := procCPU(os.Getpid())
	if err != nil {
		return 0, 0, 0, 0, err
	}
	return float64(n) / elapsed.Seconds(), after - before, b.pgCPU() - pgBefore, clientAfter - clientBefore, nil
}

// runWorkers: 1,000 simulated upstream-style workers, each polling
// queues.get_next_task once a second and reporting status every 30 s
// (spread evenly), against a server process on each back end.
func runWorkers(ctx context.Context, r *runner) ([]Result, error) {
	var res []Result
	for _, name := range []string{"sqlite", "postgres"} {
		b, err := r.startBackend(ctx, name)
		if errors.Is(err, errNoPostgres) {
			res = append(res, Result{Metric: name + ": server CPU", Skipped: err.Error()})
			continue
		}
		if err != nil {
			return res, err
		}
		rows, err := idleWorkers(ctx, b, 1000, r.window(10*time.Second, 5*time.Second))
		b.close()
		if err != nil {
			return res, err
		}
		res = append(res, rows...)
	}
	return res, nil
}

func idleWorkers(ctx context.Context, b *backend, workers int, period time.Duration) ([]Result, error) {
	c := b.api
	queue, _, err := c.GetDefaultQueue(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the default queue: %w", err)
	}
	before, err := procCPU(b.srv.pid())
	if err != nil {
		return nil, err
	}
	pgBefore := b.pgCPU()
	lctx, cancel := context.WithTimeout(ctx, period)
	defer cancel()
	var requests, failures atomic.Int64
	call := func(endpoint string, body map[string]any) {
		if err := c.Call(lctx, "", endpoint, body, nil, apiclient.Once); err != nil && lctx.Err() == nil {
			failures.Add(1)
		}
		requests.Add(1)
	}
	report := func(id string) {
		call("workers.status_report", map[string]any{"worker": id, "timestamp": time.Now().UnixMilli(), "queues": []string{queue}})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprintf("bench-host-%d:0", w)
			// Spread the workers over the second and the report period.
			if sleep(lctx, time.Duration(w)*time.Second/time.Duration(workers)) != nil {
				return
			}
			poll := time.NewTicker(time.Second)
			defer poll.Stop()
			status := time.NewTicker(30 * time.Second)
			defer status.Stop()
			if w%30 == 0 { // one in 30 reports within any 1 s slot
				report(id)
			}
			for {
				select {
				case <-lctx.Done():
					return
				case <-poll.C:
					call("queues.get_next_task", map[string]any{"queue": queue})
				case <-status.C:
					report(id)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	after, err := procCPU(b.srv.pid())
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d workers for %s, %.0f requests/s", workers, period, float64(requests.Load())/wall)
	if f := failures.Load(); f > 0 {
		note += fmt.Sprintf(", %d failed", f)
	}
	res := []Result{{Metric: b.name + ": server CPU", Value: (after - before).Seconds() / wall, Unit: "cores", Note: note}}
	if b.pg != nil && b.pgRoot != 0 {
		res = append(res, Result{Metric: b.name + ": PostgreSQL's CPU", Value: (b.pgCPU() - pgBefore).Seconds() / wall, Unit: "cores",
			Note: "all processes of the cluster"})
	}
	return res, nil
}
