package agent

import (
	"context"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
)

// reportLoop sends workers.status_report with machine statistics 3 s after
// start and then every StatusReportInterval, until ctx ends.
func (a *Agent) reportLoop(ctx context.Context) {
	if a.stats != nil {
		a.stats.Sample(time.Now()) // baseline for the first averages
	}
	wait := 3 * time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = jitter(a.cfg.StatusReportInterval)
		var stats map[string]any
		if a.stats != nil {
			stats = a.stats.Sample(time.Now())
		}
		task, queue := a.current()
		r := apiclient.StatusReport{Worker: a.cfg.WorkerID, Task: task, Queue: queue, Queues: a.Queues(),
			Tags: a.cfg.Tags, MachineStats: stats, Timestamp: time.Now()}
		err := a.api.StatusReport(ctx, r)
		if ctx.Err() != nil {
			return
		}
		a.cfg.Metrics.Report(err)
		if err != nil {
			a.log.Warn("sending status report", "err", err)
		}
	}
}

// current returns the running task and its queue, if any.
func (a *Agent) current() (task, queue string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, rt := range a.running {
		return id, rt.queue
	}
	return "", ""
}

// reportNow sends an immediate status report without machine statistics,
// as upstream does when a task starts and ends.
func (a *Agent) reportNow(ctx context.Context, task, queue string) {
	r := apiclient.StatusReport{Worker: a.cfg.WorkerID, Task: task, Queue: queue, Queues: a.Queues(), Tags: a.cfg.Tags, Timestamp: time.Now()}
	if err := a.api.StatusReport(ctx, r); err != nil && ctx.Err() == nil {
		a.log.Warn("sending status report", "err", err)
	}
}
