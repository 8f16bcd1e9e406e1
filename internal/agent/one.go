package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// ResolveQueues turns queue names and ids into queues in the daemon's way
// (spec 2.4): names are case-insensitive, ids are taken as they are, none
// means the server's default queue, and create makes the missing ones.
func ResolveQueues(ctx context.Context, c *apiclient.Client, names []string, create bool, log *slog.Logger) ([]QueueRef, error) {
	a := &Agent{cfg: Config{Queues: append([]string(nil), names...), CreateQueue: create}, api: c, log: log}
	if err := a.resolveQueues(ctx); err != nil {
		return nil, err
	}
	return a.queues, nil
}

// ErrNotQueued is RunOne's answer, with requireQueue, for a task that is
// not queued (it was aborted or taken by someone else meanwhile).
type ErrNotQueued struct{ Task, Status string }

func (e *ErrNotQueued) Error() string {
	return fmt.Sprintf("task %s is not queued (status %q): not running it", e.Task, e.Status)
}

// RunOne runs one given task as this worker, the way the daemon runs a
// task it popped (log streaming, abort watch, pings, final status), and
// returns its final status. It is `execute --full-monitoring`, what the
// Kubernetes executor's pods run: the worker (Config.WorkerID) is
// registered while the task runs and reports it. With requireQueue the
// task must be queued (a pending pod whose task was stopped meanwhile
// runs nothing); it is taken out of its queue first.
func (a *Agent) RunOne(ctx context.Context, taskID string, requireQueue bool) (string, error) {
	t, err := a.api.Task(ctx, taskID)
	if err != nil {
		return "", fmt.Errorf("reading task %s: %w", taskID, err)
	}
	if requireQueue && t.Status != api.StatusQueued {
		return t.Status, &ErrNotQueued{Task: taskID, Status: t.Status}
	}
	if t.Status == api.StatusQueued {
		if _, err := a.api.Dequeue(ctx, taskID); err != nil && requireQueue {
			return "", fmt.Errorf("taking task %s out of its queue: %w", taskID, err)
		}
	}
	q := QueueRef{}
	if id, _ := t.Execution["queue"].(string); id != "" {
		q = QueueRef{ID: id, Name: id}
		a.queues = []QueueRef{q}
	}
	final := context.WithoutCancel(ctx)
	if err := a.api.RegisterWorker(ctx, a.cfg.WorkerID, a.Queues(), a.cfg.Tags); err != nil {
		a.log.Warn("worker failed registering itself with the server", "err", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(final, 10*time.Second)
		defer cancel()
		if err := a.api.UnregisterWorker(uctx, a.cfg.WorkerID); err != nil {
			a.log.Warn("unregistering worker", "err", err)
		}
	}()
	loopCtx, stopLoop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.reportLoop(loopCtx) })
	a.runCtx = ctx
	a.runTask(ctx, taskID, "", q, "", a.ownSlot(), nil)
	stopLoop()
	wg.Wait()
	status, _, err := a.api.TaskStatus(final, taskID)
	if err != nil {
		return "", fmt.Errorf("reading task %s's final status: %w", taskID, err)
	}
	return status, nil
}
