package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// benchServer starts a real server process on the named back end:
// sqlite, sqlite-sync-full (--sqlite-sync full) or postgres.
func benchServer(b *testing.B, backend string) (*testbin.Server, *procClient) {
	b.Helper()
	var extra []string
	switch backend {
	case "postgres":
		extra = []string{"--db", pgtest.NewDatabase(b)}
	case "sqlite-sync-full":
		extra = []string{"--sqlite-sync", "full"}
	}
	s := testbin.StartServer(b, filepath.Join(b.TempDir(), "data"), extra...)
	return s, newProcClient(b, s)
}

// BenchmarkEnqueueDequeue measures enqueue + get_next_task pairs over real
// HTTP against a real server process, one pair at a time and with 8
// concurrent clients. Report: pairs/s.
func BenchmarkEnqueueDequeue(b *testing.B) {
	for _, backend := range []string{"sqlite", "sqlite-sync-full", "postgres"} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/clients=%d", backend, clients), func(b *testing.B) {
				srv, pc := benchServer(b, backend)
				var q struct{ ID string }
				if err := pc.call("queues.get_default", nil, &q); err != nil {
					b.Fatal(err)
				}
				ids := make([]string, b.N)
				for i := range ids {
					var created api.IDResponse
					if err := pc.call("tasks.create", map[string]any{"name": "bench task", "type": "training"}, &created); err != nil {
						b.Fatal(err)
					}
					ids[i] = created.ID
				}
				work := make(chan string, b.N)
				for _, id := range ids {
					work <- id
				}
				close(work)
				b.ResetTimer()
				start := time.Now()
				cpuBefore, _ := procCPU(srv.Pid())
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for id := range work {
							if err := pc.call("tasks.enqueue", map[string]any{"task": id, "queue": q.ID}, nil); err != nil {
								b.Error(err)
								return
							}
							// With several clients another one may have taken
							// this task; the queue then holds one of theirs.
							for {
								var next api.GetNextTaskResponse
								if err := pc.call("queues.get_next_task", map[string]any{"queue": q.ID}, &next); err != nil {
									b.Error(err)
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
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
				if cpuAfter, err := procCPU(srv.Pid()); err == nil {
					b.ReportMetric(float64((cpuAfter-cpuBefore).Microseconds())/float64(b.N), "server-cpu-µs/pair")
				}
			})
		}
	}
}

// procCPU returns the user+system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// postgresCPU sums the CPU time of every running postgres process (the
// benchmark's throwaway cluster is the only one while it runs).
func postgresCPU() time.Duration {
	entries, _ := os.ReadDir("/proc")
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if d, err := procCPU(pid); err == nil {
			total += d
		}
	}
	return total
}

// BenchmarkIdleWorkers simulates 1,000 idle workers against a server
// process: each polls its queue once a second and reports status every
// 30 s, as upstream agents do. Report: server-cores (CPU seconds the server
// process used per wall second). Each iteration is 10 s of load.
func BenchmarkIdleWorkers(b *testing.B) {
	if _, err := procCPU(os.Getpid()); err != nil {
		b.Skipf("needs /proc to measure server CPU: %v", err)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			s, pc := benchServer(b, backend)
			var q struct{ ID string }
			if err := pc.call("queues.get_default", nil, &q); err != nil {
				b.Fatal(err)
			}
			const workers = 1000
			const period = 10 * time.Second
			b.ResetTimer()
			var cores, pgCores float64
			var requests int64
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), period)
				before, _ := procCPU(s.Pid())
				pgBefore := postgresCPU()
				var mu sync.Mutex
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						id := fmt.Sprintf("bench-host-%d:0", w)
						// Spread the workers over the second and the report period.
						time.Sleep(time.Duration(w) * time.Second / workers)
						poll := time.NewTicker(time.Second)
						defer poll.Stop()
						report := time.NewTicker(30 * time.Second)
						defer report.Stop()
						n := int64(0)
						if w%30 == 0 { // one in 30 reports within any 1 s slot
							pc.call("workers.status_report", map[string]any{"worker": id, "timestamp": time.Now().UnixMilli(), "queues": []string{q.ID}, "machine_stats": nil, "tags": nil}, nil)
							n++
						}
						for {
							select {
							case <-ctx.Done():
								mu.Lock()
								requests += n
								mu.Unlock()
								return
							case <-poll.C:
								pc.call("queues.get_next_task", map[string]any{"queue": q.ID}, nil)
								n++
							case <-report.C:
								pc.call("workers.status_report", map[string]any{"worker": id, "timestamp": time.Now().UnixMilli(), "queues": []string{q.ID}}, nil)
								n++
							}
						}
					})
				}
				wg.Wait()
				cancel()
				after, _ := procCPU(s.Pid())
				cores += (after - before).Seconds() / period.Seconds()
				pgCores += (postgresCPU() - pgBefore).Seconds() / period.Seconds()
			}
			b.ReportMetric(cores/float64(b.N), "server-cores")
			if backend == "postgres" {
				b.ReportMetric(pgCores/float64(b.N), "postgres-cores")
			}
			b.ReportMetric(float64(requests)/float64(b.N)/period.Seconds(), "req/s")
		})
	}
}
