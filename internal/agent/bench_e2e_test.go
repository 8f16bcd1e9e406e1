package agent_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testwait"
)

// BenchmarkPickupLatency measures how long an idle daemon takes to take a
// task after its enqueue: from the enqueue's status change to the task's
// "started" time (both stamped by the server), with the long-poll
// extension. It also reports enqueue-to-completed for a trivial task.
func BenchmarkPickupLatency(b *testing.B) {
	e := newEnv(b)
	d := e.daemon("--queue", "default")
	// Registered: from here it long-polls.
	testwait.Until(b, 60*time.Second, func() bool { return strings.Contains(d.Output(), "Listening to queues") }, "the daemon to listen")
	ctx := context.Background()
	var pickups, totals []time.Duration
	b.ResetTimer()
	for range b.N {
		var created api.IDResponse
		if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "pickup", "type": "training",
			"script": map[string]any{"binary": "python3", "entry_point": "task.py", "diff": "pass\n"}}, &created, apiclient.Default); err != nil {
			b.Fatal(err)
		}
		var enq struct {
			Fields struct {
				StatusChanged api.Time `json:"status_changed"`
			}
		}
		start := time.Now()
		if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, &enq, apiclient.Default); err != nil {
			b.Fatal(err)
		}
		// (Every 5 ms: the enqueue-to-completed time is measured here.)
		testwait.Every(b, 5*time.Millisecond, time.Minute, func() bool {
			tk, err := e.api.Task(ctx, created.ID)
			if err != nil {
				b.Fatal(err)
			}
			if tk.Status != api.StatusCompleted && tk.Status != api.StatusFailed {
				return false
			}
			if tk.Started == nil {
				b.Fatal("no started time")
			}
			pickups = append(pickups, tk.Started.Sub(enq.Fields.StatusChanged.Time))
			totals = append(totals, time.Since(start))
			return true
		}, "the task to end")
	}
	b.StopTimer()
	sort.Slice(pickups, func(i, j int) bool { return pickups[i] < pickups[j] })
	sort.Slice(totals, func(i, j int) bool { return totals[i] < totals[j] })
	b.ReportMetric(float64(pickups[len(pickups)/2].Microseconds())/1000, "pickup-p50-ms")
	b.ReportMetric(float64(pickups[len(pickups)-1].Microseconds())/1000, "pickup-max-ms")
	b.ReportMetric(float64(totals[len(totals)/2].Microseconds())/1000, "enqueue-to-completed-p50-ms")
}
