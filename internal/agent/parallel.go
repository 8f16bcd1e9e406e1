package agent

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/gpu"
)

// Parallel runs several tasks at once: services mode (--services-mode
// [N]) or dynamic GPUs (--dynamic-gpus). Each task runs as a child worker
// of its own, with its own status reports, log stream and final status.
type Parallel struct {
	// Max caps the tasks running at once, counted by the daemon itself
	// (<= 0: no cap).
	Max int
	// GPUs shares devices among the queues; nil is services mode, where
	// a task runs as "<daemon id>:service:<task id>".
	GPUs *DynamicGPUs
}

// DynamicGPUs is --dynamic-gpus: the daemon owns the devices of its
// allocator and gives each task what its queue's spec asks for.
type DynamicGPUs struct {
	Allocator *gpu.Allocator
	// Specs by queue as given on the command line (name or id).
	Specs map[string]gpu.QueueSpec
	// WorkerName is the host part of worker ids ("host" of "host:gpu0").
	WorkerName string
	// Inventory and Admission: the check made before a task is taken
	// (a nil Inventory skips it).
	Inventory gpu.Inventory
	Admission gpu.Admission
}

// parallelState is the bookkeeping of parallel mode.
type parallelState struct {
	tasks sync.WaitGroup           // every task goroutine
	freed chan struct{}            // a task ended
	specs map[string]gpu.QueueSpec // by queue id
	seq   int
	// lastWait remembers the last "why no task" message, to log changes once.
	lastWait string
	// The GPU usage of others, read once per polling pass (a worker list
	// and nvidia-smi), not once per queue.
	usageAt  time.Time
	external map[string]float64
	unusable map[string]bool
}

func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// parallelLoop is pollLoop for parallel modes: a task is started in its
// own goroutine once its slot is reserved, and the loop goes on.
func (a *Agent) parallelLoop(ctx context.Context) error {
	p := a.par
	if g := a.cfg.Parallel.GPUs; g != nil {
		p.specs = map[string]gpu.QueueSpec{}
		for i, q := range a.queues {
			spec, ok := g.Specs[a.cfg.Queues[i]]
			if !ok {
				return fmt.Errorf("no GPU spec for queue %q", q.Name)
			}
			p.specs[q.ID] = spec
		}
	}
	if g := a.cfg.Parallel.GPUs; g != nil {
		a.pruneAllocations(ctx, g)
	}
	next := 0
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if a.draining.Load() {
			return nil
		}
		a.applyReload()
		active := a.activeQueues(ctx)
		started, wait := false, ""
		for i := range a.queues {
			idx := i
			if a.cfg.OrderFairness {
				idx = (next + i) % len(a.queues)
			}
			if !active[idx] {
				continue
			}
			q := a.queues[idx]
			res, why, blocks := a.reserve(ctx, q)
			if res == nil {
				if blocks {
					wait = why
					break // strict priority: lower queues wait too
				}
				continue
			}
			if a.startReserved(ctx, q, res, 0) {
				started = true
				next = (idx + 1) % len(a.queues)
				if !a.cfg.OrderFairness {
					break
				}
			}
		}
		if wait != p.lastWait {
			if wait != "" {
				a.log.Info(wait + ": waiting")
			}
			p.lastWait = wait
		}
		if started {
			continue
		}
		if err := a.parallelIdle(ctx, active, wait != ""); err != nil {
			return err
		}
	}
}

// parallelIdle waits before the next pass: until a task ends, or the poll
// interval; with one queue on a server with long polls and room for a
// task, inside get_next_task.
func (a *Agent) parallelIdle(ctx context.Context, active []bool, full bool) error {
	if !full && len(a.queues) == 1 && active[0] && a.api.HasExtension("long_poll") && !a.cfg.UseOwnerToken {
		q := a.queues[0]
		if res, _, _ := a.reserve(ctx, q); res != nil {
			pollCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-a.drainCh:
					cancel()
				case <-pollCtx.Done():
				}
			}()
			a.startReserved(pollCtx, q, res, int(a.cfg.LongPollWait/time.Millisecond))
			return ctx.Err()
		}
	}
	t := time.NewTimer(jitter(a.cfg.PollInterval))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-a.drainCh:
	case <-a.par.freed:
	case <-t.C:
	}
	return nil
}

// reservation is room held for the next task of a queue.
type reservation struct {
	key    string // allocator key until the task is known
	alloc  gpu.Allocation
	hasGPU bool
}

// reserve holds room for one task of q. It returns nil with a reason when
// the task could not start now; blocks says lower-priority queues must
// wait too (their task would take what this queue's task needs).
func (a *Agent) reserve(ctx context.Context, q QueueRef) (*reservation, string, bool) {
	p := a.cfg.Parallel
	if p.Max > 0 && a.runningCount() >= p.Max {
		return nil, fmt.Sprintf("Reached max number of services %d", p.Max), true
	}
	g := p.GPUs
	if g == nil {
		return &reservation{}, "", false
	}
	spec := a.par.specs[q.ID]
	external, unusable, err := a.passUsage(ctx, g)
	if err != nil {
		a.log.Warn("checking the GPUs; taking no GPU task now", "err", err)
		return nil, "GPU check failed", true
	}
	a.par.seq++
	key := fmt.Sprintf("pending-%d", a.par.seq)
	al, ok, err := g.Allocator.Reserve(key, spec, external, unusable)
	if err != nil {
		a.log.Error("recording the GPU allocation", "err", err)
		return nil, "GPU allocation state cannot be written", true
	}
	if !ok {
		// Waiting only matters when the queue has a task.
		if qs, err := a.api.QueuesByID(ctx, []string{q.ID}, []string{"id", "entries"}); err == nil && len(qs) == 1 && len(qs[0].Entries) == 0 {
			return nil, "", false
		}
		free := 0
		for _, f := range g.Allocator.Free(external) {
			if f >= 1 {
				free++
			}
		}
		return nil, fmt.Sprintf("Not enough free GPUs for queue %s (%s; %d whole GPUs free)", q.Name, spec, free), true
	}
	return &reservation{key: key, alloc: al, hasGPU: true}, "", false
}

// passUsage is gpuUsage, reused for the queues of one pass (half a second).
func (a *Agent) passUsage(ctx context.Context, g *DynamicGPUs) (map[string]float64, map[string]bool, error) {
	p := a.par
	if time.Since(p.usageAt) < 500*time.Millisecond {
		return p.external, p.unusable, nil
	}
	external, unusable, err := a.gpuUsage(ctx, g)
	if err == nil {
		p.usageAt, p.external, p.unusable = time.Now(), external, unusable
	}
	return external, unusable, err
}

// gpuUsage reads what other workers of this host hold (from the server's
// worker list, as upstream) and which devices the admission check refuses.
func (a *Agent) gpuUsage(ctx context.Context, g *DynamicGPUs) (map[string]float64, map[string]bool, error) {
	ids, err := a.api.WorkerIDs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the workers: %w", err)
	}
	mine := map[string]bool{a.cfg.WorkerID: true}
	a.mu.Lock()
	for _, rt := range a.running {
		mine[rt.slot.WorkerID] = true
	}
	a.mu.Unlock()
	var others []string
	for _, id := range ids {
		if !mine[id] {
			others = append(others, id)
		}
	}
	external := gpu.Busy(others, g.WorkerName)
	unusable := map[string]bool{}
	if g.Admission.Enabled && g.Inventory != nil {
		var devices []string
		for d := range g.Allocator.Free(nil) {
			devices = append(devices, d)
		}
		refused, err := g.Admission.Unusable(ctx, g.Inventory, devices, a.isOurProcess)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the GPU inventory: %w", err)
		}
		for d, why := range refused {
			unusable[d] = true
			a.log.Debug("GPU not admitted", "gpu", d, "why", why)
		}
	}
	return external, unusable, nil
}

// isOurProcess tells whether a process belongs to one of the daemon's
// tasks (its environment names a running task).
func (a *Agent) isOurProcess(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, kv := range strings.Split(string(raw), "\x00") {
		if id, ok := strings.CutPrefix(kv, "CLEARML_TASK_ID="); ok {
			if _, running := a.running[id]; running {
				return true
			}
		}
	}
	return false
}

// startReserved pops a task of q with the reservation and starts it, or
// releases the reservation. waitMS > 0 long-polls.
func (a *Agent) startReserved(ctx context.Context, q QueueRef, res *reservation, waitMS int) bool {
	release := func() {
		if res.hasGPU {
			a.cfg.Parallel.GPUs.Allocator.Release(res.key)
		}
	}
	var entry *api.QueueEntry
	var owner string
	var err error
	if a.cfg.UseOwnerToken {
		entry, owner, _, err = a.api.GetNextTaskWithOwner(ctx, q.ID)
	} else {
		entry, err = a.api.GetNextTask(ctx, q.ID, waitMS)
	}
	if ctx.Err() == nil {
		a.cfg.Metrics.Poll(entry != nil, err)
	}
	if err != nil || entry == nil {
		if err != nil && ctx.Err() == nil {
			a.log.Warn("could not access task queue", "queue", q.Name, "err", err)
		}
		release()
		return false
	}
	slot := &Slot{WorkerID: a.cfg.WorkerID + ":service:" + entry.Task, Child: true, Env: []string{"CLEARML_AGENT_SERVICE_TASK=1"}}
	if res.hasGPU {
		g := a.cfg.Parallel.GPUs
		// A range takes the GPUs freed since the room was reserved (a long
		// poll may have waited long), checked against what others use now.
		if spec := a.par.specs[q.ID]; spec.Whole() && float64(len(res.alloc.Devices)) < spec.Max {
			if external, unusable, err := a.passUsage(ctx, g); err == nil {
				res.alloc = g.Allocator.Grow(res.key, spec, external, unusable)
			}
		}
		if err := g.Allocator.Rename(res.key, entry.Task); err != nil {
			a.log.Error("recording the GPU allocation", "err", err)
		}
		vis := res.alloc.Visible()
		slot = &Slot{WorkerID: g.WorkerName + ":gpu" + res.alloc.Suffix, Child: true, GPUs: res.alloc.Devices,
			Env: []string{"NVIDIA_VISIBLE_DEVICES=" + vis, "CUDA_VISIBLE_DEVICES=" + vis}}
		res.key = entry.Task
	}
	a.log.Info("task started in parallel", "task", entry.Task, "worker", slot.WorkerID, "queue", q.Name, "running", a.runningCount()+1)
	slot.Free = func() {
		release() // a second release is a no-op
		a.parallelDone("")
	}
	a.track(entry.Task, q.ID, slot) // counted before the next pass
	a.par.tasks.Go(func() {
		defer slot.Free()
		// The daemon's shutdown, not the long poll's end, stops the task.
		a.runTask(a.runCtx, entry.Task, entry.Lease, q, owner, slot, nil)
	})
	return true
}

// parallelDone frees a parallel task's slot: its GPUs (task given: a task
// taken back after a restart, whose GPUs the allocator kept) and a wake-up
// for the poll loop.
func (a *Agent) parallelDone(task string) {
	if g := a.cfg.Parallel.GPUs; g != nil && task != "" {
		if err := g.Allocator.Release(task); err != nil {
			a.log.Error("releasing the GPUs of a finished task", "task", task, "err", err)
		}
	}
	select {
	case a.par.freed <- struct{}{}:
	default:
	}
}

// pruneAllocations drops the GPUs a previous run of this daemon held for
// tasks that have ended since; those still in progress keep theirs, so a
// restart never gives a running task's GPUs to another.
func (a *Agent) pruneAllocations(ctx context.Context, g *DynamicGPUs) {
	for task, al := range g.Allocator.Held() {
		status, _, err := a.api.TaskStatus(ctx, task)
		if err == nil && status == api.StatusInProgress {
			a.log.Info("GPUs still held by a task of an earlier run", "task", task, "gpus", al.Visible())
			continue
		}
		if err != nil && !apiclient.IsNotFound(err) {
			a.log.Warn("checking a task of an earlier run; keeping its GPUs", "task", task, "err", err)
			continue
		}
		if err := g.Allocator.Release(task); err != nil {
			a.log.Error("releasing the GPUs of a finished task", "task", task, "err", err)
		}
	}
}
