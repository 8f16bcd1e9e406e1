package server_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// BenchmarkLostHandOutRecovery measures, against a server process with
// --lease-timeout 1s, the time from a hand-out whose answer is lost (a
// get_next_task nobody acknowledges) to the same task handed to a waiting
// long poll. Report: recovery-ms (the lease, then up to a quarter of it
// until the server's next look, then the wake of the poll).
func BenchmarkLostHandOutRecovery(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			extra := []string{"--lease-timeout", "1s"}
			if backend == "postgres" {
				extra = append(extra, "--db", pgtest.NewDatabase(b))
			}
			s := testbin.StartServer(b, filepath.Join(b.TempDir(), "data"), extra...)
			pc := newProcClient(b, s)
			var q struct{ ID string }
			if err := pc.call("queues.get_default", nil, &q); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for range b.N {
				var created api.IDResponse
				if err := pc.call("tasks.create", map[string]any{"name": "lost hand-out", "type": "training"}, &created); err != nil {
					b.Fatal(err)
				}
				if err := pc.call("tasks.enqueue", map[string]any{"task": created.ID, "queue": q.ID}, nil); err != nil {
					b.Fatal(err)
				}
				var lost api.GetNextTaskResponse
				if err := pc.call("queues.get_next_task", map[string]any{"queue": q.ID}, &lost); err != nil || lost.Entry == nil {
					b.Fatalf("pop: %+v %v", lost, err)
				}
				start := time.Now()
				for {
					var next api.GetNextTaskResponse
					if err := pc.call("queues.get_next_task", map[string]any{"queue": q.ID, "wait_ms": 5000}, &next); err != nil {
						b.Fatal(err)
					}
					if next.Entry != nil {
						if next.Entry.Task != created.ID {
							b.Fatalf("got %s, want %s", next.Entry.Task, created.ID)
						}
						if err := pc.call("tasks.started", map[string]any{"task": created.ID, "force": true, "lease": next.Lease.ID}, nil); err != nil {
							b.Fatal(err)
						}
						break
					}
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "recovery-ms")
		})
	}
}
