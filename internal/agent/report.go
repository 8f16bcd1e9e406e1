package agent

import (
	"context"
	"strings"
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
		if a.par != nil {
			task, queue = "", "" // each task reports as its own worker
		}
		r := apiclient.StatusReport{Worker: a.cfg.WorkerID, Task: task, Queue: queue, Queues: a.Queues(),
			Tags: a.cfg.Tags, MachineStats: stats, Timestamp: time.Now()}
		err := a.api.StatusReport(ctx, r)
		for _, c := range a.children() {
			cr := apiclient.StatusReport{Worker: c.worker, Task: c.task, Queue: c.queue, Queues: []string{c.queue},
				Tags: a.cfg.Tags, MachineStats: childStats(stats, c.gpus, a.gpuDevices()), Timestamp: time.Now()}
			if cerr := a.api.StatusReport(ctx, cr); cerr != nil && ctx.Err() == nil {
				a.log.Debug("sending a task worker's status report", "worker", c.worker, "err", cerr)
			}
		}
		if ctx.Err() != nil {
			return
		}
		a.cfg.Metrics.Report(err)
		if err != nil {
			a.log.Warn("sending status report", "err", err)
		}
	}
}

type child struct {
	worker, task, queue string
	gpus                []string
}

// children lists the running tasks that run as workers of their own.
func (a *Agent) children() []child {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []child
	for id, rt := range a.running {
		if rt.slot != nil && rt.slot.Child {
			out = append(out, child{worker: rt.slot.WorkerID, task: id, queue: rt.queue, gpus: rt.slot.GPUs})
		}
	}
	return out
}

// gpuDevices are the daemon's devices with dynamic GPUs, in the order of
// the GPU lists of its machine statistics.
func (a *Agent) gpuDevices() []string {
	if a.cfg.Parallel == nil || a.cfg.Parallel.GPUs == nil {
		return nil
	}
	return a.cfg.Parallel.GPUs.Allocator.Devices()
}

// childStats is the machine statistics a task's worker reports: the
// machine's, with the GPU lists cut to the task's devices (by their
// position among the daemon's devices) when it has some.
func childStats(stats map[string]any, gpus, devices []string) map[string]any {
	if stats == nil || len(gpus) == 0 {
		return stats
	}
	want := map[int]bool{}
	for _, g := range gpus {
		for i, d := range devices {
			if d == g {
				want[i] = true
			}
		}
	}
	out := make(map[string]any, len(stats))
	for k, v := range stats {
		if list, ok := v.([]float64); ok && strings.HasPrefix(k, "gpu_") {
			var cut []float64
			for i, x := range list {
				if want[i] {
					cut = append(cut, x)
				}
			}
			out[k] = cut
			continue
		}
		out[k] = v
	}
	return out
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
func (a *Agent) reportNow(ctx context.Context, worker, task, queue string) {
	r := apiclient.StatusReport{Worker: worker, Task: task, Queue: queue, Queues: a.Queues(), Tags: a.cfg.Tags, Timestamp: time.Now()}
	if err := a.api.StatusReport(ctx, r); err != nil && ctx.Err() == nil {
		a.log.Warn("sending status report", "err", err)
	}
}
