// Package agent is the daemon: it registers a worker, polls its queues in
// priority (or round-robin) order, runs each task it takes as a child
// process, streams the task's output to the server, detects aborts, and
// reports the task's final status. It never dies because of one task or
// one failed call: failures are logged, reported on the task, and the loop
// goes on.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/memtrim"
	"github.com/goclearml/agent/internal/metrics"
	"github.com/goclearml/agent/internal/schedule"
	"github.com/goclearml/agent/internal/sysstats"
)

// Config is what the daemon needs beyond its collaborators.
type Config struct {
	// Queues are queue ids or names in priority order; empty means the
	// server's default queue.
	Queues        []string
	CreateQueue   bool
	OrderFairness bool
	// PollInterval is the wait between idle polling passes (default 5 s;
	// upstream forces at least 5 s, we accept down to 0.5 s). Jittered.
	PollInterval time.Duration
	// LongPollWait is how long one long poll waits on servers that have
	// the long_poll extension (default 20 s).
	LongPollWait time.Duration
	// AbortCheckInterval is how often a running task's status is checked
	// for an abort (default 1 s).
	AbortCheckInterval time.Duration
	// TaskPingInterval is the tasks.ping period (default 60 s; <0 disables).
	TaskPingInterval time.Duration
	// StatusReportInterval is the workers.status_report period (30 s).
	StatusReportInterval time.Duration
	// GracePeriod is the SIGTERM-to-SIGKILL wait of an abort (10 s).
	GracePeriod time.Duration

	WorkerID string
	// Hostname goes into the task's runtime (_exec_agent_hostname).
	Hostname string
	Tags     []string
	// ChildArgv returns the command that runs one task (normally this
	// binary's `execute --id T`).
	ChildArgv func(taskID string) []string
	// ChildEnv is the environment of the child (CLEARML_WORKER_ID and the
	// like are added).
	ChildEnv []string
	// SpoolDir holds the task log spools.
	SpoolDir string
	// Secrets are masked in task logs.
	Secrets []string
	// SuppressCarriageReturn: keep only the last \r segment of a line.
	SuppressCarriageReturn bool
	// Console, when set, also receives the task output (--foreground).
	Console io.Writer
	// Metrics records polls, tasks and logs (nil: none).
	Metrics *metrics.Metrics
	// Schedule is the uptime/downtime schedule (zero: always active);
	// queue tags force_workers:on/off override it per queue.
	Schedule schedule.Schedule
	// Now is the clock for schedule decisions (default time.Now).
	Now func() time.Time
	// AfterTask, when set, runs after each task's process ended (it removes
	// the task's working folder).
	AfterTask func(taskID string)
	// UseOwnerToken runs each task with its owner's identity
	// (--use-owner-token): the daemon must be an admin on a server that
	// supports impersonation.
	UseOwnerToken bool
	// Launcher, when set, runs each task (docker mode); otherwise the
	// executor runs ChildArgv as a local process.
	Launcher Launcher
	// Parallel, when set, runs several tasks at once (services mode,
	// dynamic GPUs); otherwise one task runs at a time.
	Parallel *Parallel
	// RunsDir keeps a record of each running task and its run folder
	// (output, status), so that a daemon started again with the same
	// worker id takes back the tasks whose process survived it. Empty: no
	// records (tests of the one-process executor).
	RunsDir string
	// Leftovers removes what a lost docker run left (its containers, by
	// run marker); nil outside docker mode.
	Leftovers func(ctx context.Context, marker string)
	// LostCommand, when set, gives the command a task's supervisor runs
	// when it stopped the task because no daemon followed it within the
	// reattach timeout: it reports the task failed, "agent lost", and
	// removes what the run left (its folder, its container).
	LostCommand func(taskID, marker string, docker bool) *executor.Command
}

func (c *Config) setDefaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Second
	}
	c.PollInterval = max(c.PollInterval, 500*time.Millisecond)
	if c.LongPollWait <= 0 {
		c.LongPollWait = 20 * time.Second
	}
	if c.AbortCheckInterval <= 0 {
		c.AbortCheckInterval = time.Second
	}
	if c.TaskPingInterval == 0 {
		c.TaskPingInterval = 60 * time.Second
	}
	if c.StatusReportInterval <= 0 {
		c.StatusReportInterval = 30 * time.Second
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = 10 * time.Second
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Executor runs one task process (executor.Executor in production).
type Executor interface {
	Run(ctx context.Context, spec executor.Spec, out io.Writer) (executor.Exit, error)
	// Attach follows a run an earlier daemon started (its RunDir), from
	// offset in its output.
	Attach(ctx context.Context, spec executor.Spec, offset int64, out io.Writer) (executor.Exit, error)
}

// Launcher runs tasks some other way than as a local process: docker mode
// runs each in its own container (docker.Launcher).
type Launcher interface {
	// Launch turns the process-mode spec of a task (its execute command
	// and environment) into what really runs. logf writes to the task log.
	// An error fails the task before anything ran; cleanup (when not nil)
	// runs after the task ended.
	Launch(ctx context.Context, tapi *apiclient.Client, taskID string, spec executor.Spec, logf func(level, msg string)) (executor.Spec, func(), error)
	Executor
}

// Agent is one daemon.
type Agent struct {
	cfg   Config
	api   *apiclient.Client
	exec  Executor
	log   *slog.Logger
	stats *sysstats.Sampler

	queues []QueueRef // resolved, priority order
	// inactiveSince remembers that the schedule stopped the daemon, to log
	// state changes once.
	inactive bool
	// tags are the queues' tags as last read (activeQueues), for the
	// queue ids in key; owned by the poll loop.
	tags struct {
		byID map[string][]string
		key  string
		read time.Time
	}

	draining atomic.Bool
	drainCh  chan struct{}
	drainMu  sync.Once

	mu      sync.Mutex
	running map[string]*runningTask // task id -> run, for reports and shutdown
	reload  *Reloadable             // pending SIGHUP reload

	problems problems // repeated errors, said once

	par    *parallelState  // parallel modes only
	runCtx context.Context // Run's context: parallel tasks stop with it
}

// QueueRef is a resolved queue: its id and name.
type QueueRef struct{ ID, Name string }

// New builds a daemon. Nothing happens until Run.
func New(cfg Config, client *apiclient.Client, exec Executor, stats *sysstats.Sampler, log *slog.Logger) *Agent {
	cfg.setDefaults()
	a := &Agent{cfg: cfg, api: client, exec: exec, stats: stats, log: log,
		drainCh: make(chan struct{}), running: map[string]*runningTask{}}
	if cfg.Parallel != nil {
		a.par = &parallelState{freed: make(chan struct{}, 1)}
	}
	return a
}

// Reloadable is the part of the configuration a SIGHUP can change; it
// takes effect before the next polling pass (a running task is not
// affected).
type Reloadable struct {
	Schedule         schedule.Schedule
	PollInterval     time.Duration
	TaskPingInterval time.Duration
	Secrets          []string
}

// Reload applies new settings at the next polling pass.
func (a *Agent) Reload(r Reloadable) {
	a.mu.Lock()
	a.reload = &r
	a.mu.Unlock()
}

// applyReload installs a pending Reload; the poll loop calls it between
// passes, so the settings never change under a running task.
func (a *Agent) applyReload() {
	a.mu.Lock()
	r := a.reload
	a.reload = nil
	a.mu.Unlock()
	if r == nil {
		return
	}
	a.mu.Lock()
	a.cfg.Secrets = r.Secrets // read by running tasks
	a.mu.Unlock()
	a.cfg.Schedule = r.Schedule
	if r.PollInterval > 0 {
		a.cfg.PollInterval = max(r.PollInterval, 500*time.Millisecond)
	}
	if r.TaskPingInterval != 0 {
		a.cfg.TaskPingInterval = r.TaskPingInterval
	}
	a.inactive = false
	a.log.Info("configuration reloaded", "schedule", r.Schedule.Mode.String(), "poll_interval", a.cfg.PollInterval)
}

// Drain stops taking new tasks; Run returns once the running task ended.
func (a *Agent) Drain() {
	a.drainMu.Do(func() {
		a.draining.Store(true)
		close(a.drainCh)
	})
}

// RunningTasks is how many tasks this daemon runs now.
func (a *Agent) RunningTasks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running)
}

// Queues returns the resolved queues (after Run has started).
func (a *Agent) Queues() []string {
	ids := make([]string, len(a.queues))
	for i, q := range a.queues {
		ids[i] = q.ID
	}
	return ids
}

// Run registers the worker and serves tasks until ctx ends (a shutdown:
// the running task is stopped and reported "agent shutdown") or Drain was
// called and the running task finished. It unregisters before returning.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.UseOwnerToken {
		if err := a.checkOwnerToken(); err != nil {
			return err
		}
	}
	if err := a.resolveQueues(ctx); err != nil {
		return err
	}
	a.log.Info("Listening to queues", "worker", a.cfg.WorkerID, "queues", a.queueList())
	final := context.WithoutCancel(ctx)
	if err := a.api.RegisterWorker(ctx, a.cfg.WorkerID, a.Queues(), a.cfg.Tags); err != nil {
		a.log.Warn("worker failed registering itself with the server", "err", err)
	}
	defer func() {
		// Unregister on a context the shutdown cannot reach, bounded.
		uctx, cancel := context.WithTimeout(final, 10*time.Second)
		defer cancel()
		if err := a.api.UnregisterWorker(uctx, a.cfg.WorkerID); err != nil {
			a.log.Warn("unregistering worker", "err", err)
		}
	}()
	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.reportLoop(loopCtx) })
	wg.Go(func() { memtrim.After(loopCtx, a.log) })
	a.runCtx = ctx
	back := a.recoverRuns(ctx)
	var err error
	for _, r := range back {
		q := QueueRef{ID: r.rec.QueueID, Name: r.rec.QueueName}
		slot := r.rec.Slot
		if a.par == nil {
			// One task at a time: it is finished before polling starts.
			a.runTask(ctx, r.rec.Task, "", q, r.rec.Owner, &slot, r)
			continue
		}
		slot.Free = func() { a.parallelDone(r.rec.Task) }
		a.track(r.rec.Task, q.ID, &slot)
		a.par.tasks.Go(func() {
			defer slot.Free()
			a.runTask(ctx, r.rec.Task, "", q, r.rec.Owner, &slot, r)
		})
	}
	if a.par != nil {
		err = a.parallelLoop(ctx)
		// A drain lets the running tasks finish; a shutdown (ctx) stops
		// each of them, reported "agent shutdown".
		a.par.tasks.Wait()
	} else {
		err = a.pollLoop(ctx)
	}
	stopLoops()
	wg.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// checkOwnerToken refuses --use-owner-token where it cannot work (spec
// 2.7): a server without impersonation, or a daemon identity that is not
// an admin.
func (a *Agent) checkOwnerToken() error {
	cl := a.api.Claims()
	if !a.api.HasExtension("impersonation") && (cl.FeatureSet == "" || cl.FeatureSet == "basic") {
		return errors.New("server does not support --use-owner-token option: it cannot issue tokens for the task owner (needs our server or a ClearML server with impersonation)")
	}
	switch cl.Role {
	case "admin", "root", "system":
		return nil
	}
	return fmt.Errorf("user role not suitable for --use-owner-token option (requires at least admin or service account, found %q)", cl.Role)
}

// jitter returns d ± 10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// sleep waits d, or less when ctx ends or a drain starts.
func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-a.drainCh:
		return nil
	case <-t.C:
		return nil
	}
}

// ownSlot is the slot of a task run as the daemon's own worker.
func (a *Agent) ownSlot() *Slot { return &Slot{WorkerID: a.cfg.WorkerID} }

// errf is fmt.Errorf, shortened for the wrapping prefixes below.
var errf = fmt.Errorf
