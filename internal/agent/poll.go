package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/schedule"
)

// idPattern is how upstream tells a queue id from a name.
var idPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[-a-f0-9]{30,}$`) })

// resolveQueues turns the configured queue names and ids into ids (spec 2.4).
func (a *Agent) resolveQueues(ctx context.Context) error {
	if len(a.cfg.Queues) == 0 {
		id, name, err := a.api.GetDefaultQueue(ctx)
		if err == nil {
			a.queues = []QueueRef{{ID: id, Name: name}}
			return nil
		}
		a.log.Warn("no default queue on the server; looking for a queue named \"default\"", "err", err)
		a.cfg.Queues = []string{"default"}
	}
	a.queues = nil
	for _, q := range a.cfg.Queues {
		ref, err := a.resolveQueue(ctx, q)
		if err != nil {
			return err
		}
		a.queues = append(a.queues, ref)
	}
	return nil
}

func (a *Agent) resolveQueue(ctx context.Context, q string) (QueueRef, error) {
	if idPattern().MatchString(q) {
		return QueueRef{ID: q, Name: q}, nil
	}
	found, err := a.api.QueuesByName(ctx, q)
	if err != nil {
		return QueueRef{}, fmt.Errorf("resolving queue %q: %w", q, err)
	}
	var matches []api.Queue
	for _, f := range found {
		if strings.EqualFold(f.Name, q) {
			matches = append(matches, f)
		}
	}
	switch {
	case len(matches) == 1:
		return QueueRef{ID: matches[0].ID, Name: matches[0].Name}, nil
	case len(matches) > 1:
		var ids []string
		for _, m := range matches {
			ids = append(ids, m.ID+" ("+m.Name+")")
		}
		return QueueRef{}, fmt.Errorf("found multiple queues with name %q: %s", q, strings.Join(ids, ", "))
	case a.cfg.CreateQueue:
		id, err := a.api.CreateQueue(ctx, q)
		if api.ErrExpectedUniqueData.Is(err) {
			// Someone created it since we looked: use theirs.
			a.cfg.CreateQueue = false
			defer func() { a.cfg.CreateQueue = true }()
			return a.resolveQueue(ctx, q)
		}
		if err != nil {
			return QueueRef{}, fmt.Errorf("creating queue %q: %w", q, err)
		}
		a.log.Info("created queue", "queue", q, "id", id)
		return QueueRef{ID: id, Name: q}, nil
	default:
		var names []string
		for _, f := range found {
			names = append(names, f.Name)
		}
		hint := ""
		if len(names) > 0 {
			hint = "; did you mean: " + strings.Join(names[:min(len(names), 10)], ", ")
		}
		return QueueRef{}, fmt.Errorf("could not find queue with name/id %q (use --create-queue to create it)%s", q, hint)
	}
}

// queueList names the queues for people: "default (id), gpu (id)".
func (a *Agent) queueList() string {
	parts := make([]string, len(a.queues))
	for i, q := range a.queues {
		parts[i] = q.Name + " (" + q.ID + ")"
	}
	return strings.Join(parts, ", ")
}

// pollLoop is the spec's run_tasks_loop. Priority mode restarts at the
// first queue after every task, without sleeping; fairness mode moves on
// to the next queue. An idle pass sleeps the poll interval, or long-polls
// when the server supports it and there is one queue.
func (a *Agent) pollLoop(ctx context.Context) error {
	next := 0 // fairness: where the next pass starts
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if a.draining.Load() {
			return nil
		}
		a.applyReload()
		ran := false
		start := next
		active := a.activeQueues(ctx)
		for i := 0; i < len(a.queues); i++ {
			idx := i
			if a.cfg.OrderFairness {
				idx = (start + i) % len(a.queues)
			}
			if !active[idx] {
				continue
			}
			q := a.queues[idx]
			var entry *api.QueueEntry
			var owner string
			var err error
			if a.cfg.UseOwnerToken {
				entry, owner, _, err = a.api.GetNextTaskWithOwner(ctx, q.ID)
			} else {
				entry, err = a.api.GetNextTask(ctx, q.ID, 0)
			}
			a.cfg.Metrics.Poll(entry != nil, err)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				a.problems.report(a.log, "could not access task queue", err, "queue", q.Name)
				continue
			}
			a.problems.clear(a.log, "could not access task queue")
			if entry == nil {
				continue
			}
			a.runTask(ctx, entry.Task, entry.Lease, q, owner, a.ownSlot(), nil)
			ran = true
			if a.draining.Load() || ctx.Err() != nil {
				break
			}
			if !a.cfg.OrderFairness {
				break // priority: start again at the first queue at once
			}
			next = (idx + 1) % len(a.queues)
		}
		if ran {
			continue // no wait after a task: look again at once
		}
		if err := a.idleWait(ctx, active); err != nil {
			return err
		}
	}
}

// queueTagsMaxAge is how long the queues' tags, once read, serve the
// passes that follow: a burst of tasks, taken one pass after the other,
// costs one read, not one per task.
const queueTagsMaxAge = time.Second

// activeQueues decides, per queue, whether the daemon takes tasks from it
// now: queue tags force_workers:on/off first, then the uptime/downtime
// schedule (spec 2.6 should_be_currently_active). The tags are read once
// per pass, as upstream does, unless the last read is under a second old;
// if they cannot be read, the schedule alone decides.
func (a *Agent) activeQueues(ctx context.Context) []bool {
	tags := a.queueTags(ctx)
	now := a.cfg.Now()
	out := make([]bool, len(a.queues))
	anyActive := false
	for i, q := range a.queues {
		out[i], _ = schedule.Decide(tags[q.ID], a.cfg.Schedule, now)
		anyActive = anyActive || out[i]
	}
	if !anyActive && !a.inactive {
		msg := "outside the working schedule: taking no new task"
		if next := a.cfg.Schedule.Next(now); !next.IsZero() {
			msg += " until " + next.Format("Mon 2006-01-02 15:04 MST")
		}
		a.log.Info(msg)
	} else if anyActive && a.inactive {
		a.log.Info("inside the working schedule: taking tasks again")
	}
	a.inactive = !anyActive
	return out
}

// queueTags returns the tags of the daemon's queues by id (see
// queueTagsMaxAge); none when they cannot be read.
func (a *Agent) queueTags(ctx context.Context) map[string][]string {
	ids := a.Queues()
	key := strings.Join(ids, ",")
	if a.tags.byID != nil && a.tags.key == key && time.Since(a.tags.read) < queueTagsMaxAge {
		return a.tags.byID
	}
	qs, err := a.api.QueuesByID(ctx, ids, []string{"id", "tags"})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("reading queue tags", "err", err)
		}
		a.tags.byID = nil
		return map[string][]string{}
	}
	byID := make(map[string][]string, len(qs))
	for _, q := range qs {
		byID[q.ID] = q.Tags
	}
	a.tags.byID, a.tags.key, a.tags.read = byID, key, time.Now()
	return byID
}

// StatusReport renders the --status report: schedule, state, queues.
func (a *Agent) StatusReport(ctx context.Context) (string, error) {
	if err := a.resolveQueues(ctx); err != nil {
		return "", err
	}
	qs, err := a.api.QueuesByID(ctx, a.Queues(), []string{"id", "name", "tags"})
	if err != nil {
		return "", fmt.Errorf("reading queues: %w", err)
	}
	states := make([]schedule.QueueState, 0, len(qs))
	for _, q := range qs {
		states = append(states, schedule.QueueState{Name: q.Name, Tags: q.Tags})
	}
	return schedule.Report(a.cfg.Schedule, states, a.cfg.Now()), nil
}

// idleWait waits before the next pass. With one queue on a server that has
// the long_poll extension it waits inside get_next_task instead, and runs
// the task it returns.
func (a *Agent) idleWait(ctx context.Context, active []bool) error {
	if len(a.queues) != 1 || !active[0] || !a.api.HasExtension("long_poll") || a.draining.Load() || a.cfg.UseOwnerToken {
		return a.sleep(ctx, jitter(a.cfg.PollInterval))
	}
	// A drain must not wait for the long poll to end.
	pollCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.drainCh:
			cancel()
		case <-pollCtx.Done():
		}
	}()
	q := a.queues[0]
	entry, err := a.api.GetNextTask(pollCtx, q.ID, int(a.cfg.LongPollWait/time.Millisecond))
	if pollCtx.Err() == nil {
		a.cfg.Metrics.Poll(entry != nil, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if pollCtx.Err() != nil {
			return nil // draining
		}
		a.problems.report(a.log, "could not access task queue", err, "queue", q.Name)
		return a.sleep(ctx, jitter(a.cfg.PollInterval))
	}
	a.problems.clear(a.log, "could not access task queue")
	if entry != nil && !errors.Is(ctx.Err(), context.Canceled) {
		a.runTask(ctx, entry.Task, entry.Lease, q, "", a.ownSlot(), nil)
	}
	return nil
}
