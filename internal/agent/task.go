package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/logstream"
	"github.com/goclearml/agent/internal/metrics"
	"github.com/goclearml/agent/internal/redact"
)

type runningTask struct {
	queue string
	slot  *Slot
	// done is closed when the run has ended, teardown and all (untrack).
	done chan struct{}
	// after is the done of a run of the same task that was still ending
	// when this one was tracked (nil: none): this run starts after it.
	after <-chan struct{}
}

// Slot is where one task runs: the worker it runs as and what it gets.
// One task at a time runs as the daemon's own worker; in services mode and
// with dynamic GPUs each task runs as a child worker of its own.
type Slot struct {
	// WorkerID is the worker the task runs as.
	WorkerID string
	// Child: the worker is the task's own, registered and reported on by
	// the daemon while the task runs.
	Child bool
	// Env is added to the task's environment (visible devices).
	Env []string
	// GPUs are the devices of the task, for its status reports.
	GPUs []string
	// Free, when set, gives back what the slot holds (its GPUs) once the
	// task's process has ended: before the final status and the last of
	// the log are sent, which can take long on a slow server. It may be
	// called again later.
	Free func() `json:"-"`
}

// stopReason says why a task process was stopped by the daemon.
type stopReason int

const (
	noStop       stopReason = iota
	stopAborted             // tasks.stop: status_message "stopping"
	stopChanged             // someone else changed the status
	stopReset               // the task was reset
	stopNotFound            // the task was deleted
	stopShutdown            // the daemon is shutting down
)

// eventSender adapts the API client to the log streamer.
type eventSender struct {
	c *apiclient.Client
	m *metrics.Metrics
}

func (s eventSender) AddEvents(ctx context.Context, lines [][]byte) (int, error) {
	added, _, err := s.c.AddEvents(ctx, lines, apiclient.Default)
	if err != nil {
		s.m.LogSendFailed()
	}
	return added, err
}

// Delivered tells whether the server has a task log event (the one batch
// a crash may have left in doubt): the event at its timestamp must have
// the same message and worker.
func (s eventSender) Delivered(ctx context.Context, line []byte) (bool, error) {
	var ev struct {
		Task      string `json:"task"`
		Worker    string `json:"worker"`
		Msg       string `json:"msg"`
		Timestamp int64  `json:"timestamp"`
	}
	if err := json.Unmarshal(line, &ev); err != nil || ev.Task == "" {
		return false, fmt.Errorf("reading a spooled event: %v", err)
	}
	var resp api.TaskLogResponse
	err := s.c.Call(ctx, "", "events.get_task_log", map[string]any{"task": ev.Task, "navigate_earlier": false,
		"from_timestamp": ev.Timestamp - 1, "batch_size": 20}, &resp, apiclient.Default)
	if err != nil {
		return false, err
	}
	for _, got := range resp.Events {
		ts, _ := got["timestamp"].(float64)
		if int64(ts) != ev.Timestamp {
			continue
		}
		msg, _ := got["msg"].(string)
		worker, _ := got["worker"].(string)
		if msg == ev.Msg && worker == ev.Worker {
			return true, nil
		}
	}
	return false, nil
}

// countingWriter counts the task output bytes for the metrics.
type countingWriter struct {
	w io.Writer
	m *metrics.Metrics
}

func (c countingWriter) Write(p []byte) (int, error) {
	c.m.LogBytes(len(p))
	return c.w.Write(p)
}

// track records the task's run in slot, once: the parallel loop tracks a
// run before runTask does, with the same slot. In services mode a task
// queued again as soon as its final status is out can be popped again
// while its last run still tears down (its worker, its run folder): the
// new run is then tracked after it, and waits for its end.
func (a *Agent) track(task, queue string, slot *Slot) *runningTask {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.running[task]
	if ok && prev.slot == slot {
		return prev
	}
	rt := &runningTask{queue: queue, slot: slot, done: make(chan struct{})}
	if ok {
		rt.after = prev.done
	}
	a.running[task] = rt
	return rt
}

// untrack ends the run rt, which a later run of the task may wait for.
func (a *Agent) untrack(task string, rt *runningTask) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running[task] == rt {
		delete(a.running, task)
	}
	close(rt.done)
}

// runTask runs one task popped from q, from "pulled" to its final status
// (spec 2.8, 2.8.2). Nothing in it can stop the daemon.
//
// lease is the hand-out id of the pop (empty when the server has no
// leases): the task is marked started with it, and if the server says the
// hand-out expired (the task went back to its queue, maybe to another
// worker), the task is left alone.
func (a *Agent) runTask(ctx context.Context, taskID, lease string, q QueueRef, owner string, slot *Slot, res *resumed) {
	start := time.Now()
	final := context.WithoutCancel(ctx) // status and log delivery outlive a shutdown
	defer func() {
		// One task's bug in the agent must not take the daemon down.
		if p := recover(); p != nil {
			a.log.Error("internal error while running task", "task", taskID, "panic", p, "stack", string(debug.Stack()))
			a.finish(final, a.api, slot, taskID, "tasks.failed", fmt.Sprintf("agent internal error: %v", p))
		}
	}()
	rt := a.track(taskID, q.ID, slot)
	defer a.untrack(taskID, rt)
	log := a.log.With("task", taskID)
	if rt.after != nil {
		select {
		case <-rt.after:
		case <-ctx.Done():
			// Not started: its hand-out expires and the task goes back to its queue.
			log.Warn("shutting down while the task's last run was still ending; the task is left to its queue")
			return
		}
	}
	// The marker the run's processes will carry is in the record from the
	// start: one write of it per task (a file created on the task's path).
	rec := &runRecord{Task: taskID, QueueID: q.ID, QueueName: q.Name, Owner: owner, Slot: *slot, Taken: time.Now(),
		Marker: taskID + "-" + strconv.FormatInt(time.Now().UnixNano(), 10), Docker: a.cfg.Launcher != nil}
	if res != nil {
		rec = res.rec
		log.Info("following task again after a restart", "queue", q.Name, "from_output_offset", res.resume.SourceOffset)
	} else {
		log.Info("running task", "queue", q.Name)
		a.saveRecord(rec)
	}
	// The record goes once the final status is out (deferred first: runs last).
	defer a.dropRecord(taskID)
	// With --use-owner-token every task-scoped call, and the task process
	// itself, acts as the task's owner. The owner's session is made before
	// the task is marked started, so a failed login does not leave it
	// in_progress with no process (upstream's order, spec 7.5).
	tapi, ownerToken, err := a.taskSession(ctx, owner)
	if err != nil {
		log.Error("cannot act as the task's owner; failing the task", "owner", owner, "err", err)
		a.finish(final, a.api, slot, taskID, "tasks.failed", "setup failed: could not log in as the task's owner: "+err.Error())
		return
	}
	if res == nil {
		if err := tapi.Started(ctx, taskID, "pulled by agent", lease, apiclient.Default); api.ErrLeaseLost.Is(err) {
			log.Warn("skipping task: its hand-out expired before this worker started it, and it went back to its queue", "err", err)
			return
		} else if err != nil {
			log.Warn("could not mark task pulled", "err", err)
		}
	}
	if slot.Child {
		if err := a.api.RegisterWorker(ctx, slot.WorkerID, []string{q.ID}, a.cfg.Tags); err != nil {
			log.Warn("registering the task's worker", "worker", slot.WorkerID, "err", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(final, 10*time.Second)
			defer cancel()
			if err := a.api.UnregisterWorker(uctx, slot.WorkerID); err != nil {
				log.Warn("unregistering the task's worker", "worker", slot.WorkerID, "err", err)
			}
		}()
	}
	if !slot.Child {
		defer a.reportNow(final, slot.WorkerID, "", "")
	}
	secrets := a.beforeStart(ctx, tapi, slot, taskID, q.ID, res == nil, log)
	streamer, closeLog, err := a.openLog(final, tapi, slot, taskID, secrets, res, log)
	if err != nil {
		log.Error("cannot stream the task log", "err", err)
		a.finish(final, tapi, slot, taskID, "tasks.failed", "setup failed: cannot stream the task log: "+err.Error())
		return
	}
	defer closeLog()
	if res != nil {
		streamer.Log("WARNING", fmt.Sprintf("clearml-agent: worker %s restarted; following the task again (its process kept running)", slot.WorkerID))
	} else {
		streamer.Log("INFO", fmt.Sprintf("task %s pulled from %s by worker %s\n", taskID, q.ID, slot.WorkerID))
		// The hand-out was acknowledged by "pulled by agent" (or, if that
		// call's answer was lost, this one settles it by worker).
		if err := tapi.Started(ctx, taskID, "launch by agent", "", apiclient.Default); api.ErrLeaseLost.Is(err) {
			log.Warn("skipping task: its hand-out expired before this worker started it, and it went back to its queue", "err", err)
			streamer.Log("WARNING", "clearml-agent: the hand-out of this task to worker "+slot.WorkerID+" expired before it started; the task went back to its queue")
			return
		} else if err != nil {
			log.Warn("could not set status=in_progress; skipping task", "err", err)
			streamer.Log("ERROR", "Could not set task status to in_progress: "+err.Error())
			return
		}
	}
	a.cfg.Metrics.TaskStarted()
	runStart := time.Now()
	setup := newSetupCatcher(taskID)
	reason, exit, runErr := a.supervise(ctx, tapi, slot, rec, res, ownerToken, streamer, secrets, setup)
	if slot.Free != nil {
		slot.Free()
	}
	if a.cfg.AfterTask != nil {
		a.cfg.AfterTask(taskID)
	}
	finishStart := time.Now()
	status := a.report(final, tapi, slot, taskID, streamer, reason, exit, runErr, setup.Reason(), closeLog)
	a.cfg.Metrics.TaskFinished(taskID, status, runStart.Sub(start), finishStart.Sub(runStart), time.Since(finishStart))
	log.Info("task done", "exit_code", exit.Code, "status", status, "duration", time.Since(start).Round(time.Millisecond))
}

// beforeStart does the bookkeeping the task's start does not wait on, at
// once and in parallel: the worker's report, the secrets the log masks,
// and on a fresh run (not one followed again after a restart) the host
// recorded on the task. It returns the secrets. A panic in any of them is
// raised again here, on runTask's goroutine, whose recover handles it.
func (a *Agent) beforeStart(ctx context.Context, tapi *apiclient.Client, slot *Slot, taskID, queueID string, fresh bool, log *slog.Logger) []string {
	var secrets []string
	var pre sync.WaitGroup
	var panicked atomic.Value
	goSafe := func(f func()) {
		pre.Go(func() {
			// A panic is runTask's, whose recover does not reach here.
			defer func() {
				if p := recover(); p != nil {
					panicked.CompareAndSwap(nil, fmt.Sprintf("%v\n%s", p, debug.Stack()))
				}
			}()
			f()
		})
	}
	goSafe(func() { a.reportNow(ctx, slot.WorkerID, taskID, queueID) })
	goSafe(func() { secrets = a.taskSecrets(ctx, tapi, taskID) })
	if fresh {
		goSafe(func() {
			if err := tapi.EditRuntime(ctx, taskID, map[string]any{"_exec_agent_hostname": a.cfg.Hostname}); err != nil {
				log.Warn("failed setting hostname for task", "err", err)
			}
		})
	}
	pre.Wait()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
	return secrets
}

// openLog starts streaming the task's log (from where the last daemon
// left it, for a run followed again). closeLog delivers the whole log and
// stops the stream; the final status is sent after it (report), so that
// whoever sees the status also sees every line. final outlives a
// shutdown.
func (a *Agent) openLog(final context.Context, tapi *apiclient.Client, slot *Slot, taskID string, secrets []string, res *resumed,
	log *slog.Logger) (streamer *logstream.Streamer, closeLog func(), err error) {
	lcfg := logstream.Config{TaskID: taskID, Worker: slot.WorkerID, SpoolDir: a.cfg.SpoolDir,
		Secrets: secrets, SuppressCarriageReturn: a.cfg.SuppressCarriageReturn, Logger: log, TrackSource: a.cfg.RunsDir != ""}
	if res != nil {
		lcfg.SourceOffset, lcfg.MinTimestamp = res.resume.SourceOffset, res.resume.LastTimestamp
	}
	streamer, err = logstream.New(lcfg, eventSender{tapi, a.cfg.Metrics})
	if err != nil {
		return nil, nil, err
	}
	streamCtx, stopStream := context.WithCancel(final)
	var wg sync.WaitGroup
	wg.Go(func() { streamer.Run(streamCtx) })
	var closeOnce sync.Once
	closeLog = func() {
		closeOnce.Do(func() {
			if st := streamer.Stats(); st.SpoolError != "" {
				// The log went from memory: say so, on the log and the task.
				streamer.Log("WARNING", "clearml-agent: the task log spool could not be written ("+st.SpoolError+
					"); the log was sent from memory, without the protection of the disk spool")
				mark := map[string]any{"_log_spool_error": st.SpoolError}
				if st.Dropped > 0 {
					mark["_log_incomplete"] = fmt.Sprintf("%d log events dropped", st.Dropped)
				}
				if err := tapi.EditRuntime(final, taskID, mark); err != nil {
					log.Warn("marking the task log incomplete", "err", err)
				}
			}
			// Deliver every line before moving on; what cannot be delivered
			// stays spooled on disk and is sent by the next daemon start.
			cctx, cancel := context.WithTimeout(final, 5*time.Minute)
			if err := streamer.Close(cctx); err != nil {
				log.Error("task log not fully delivered; kept on disk", "err", err)
			}
			cancel()
			stopStream()
			wg.Wait()
		})
	}
	return streamer, closeLog, nil
}

// supervise runs the child and watches the task for aborts and pings it.
func (a *Agent) supervise(ctx context.Context, tapi *apiclient.Client, slot *Slot, rec *runRecord, res *resumed, ownerToken string,
	streamer *logstream.Streamer, secrets []string, setup *setupCatcher) (stopReason, executor.Exit, error) {
	taskID := rec.Task
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var mu sync.Mutex
	reason := noStop
	stop := func(r stopReason) {
		mu.Lock()
		if reason == noStop {
			reason = r
		}
		mu.Unlock()
		cancelRun()
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	marker := rec.Marker
	runDir := ""
	if a.cfg.RunsDir != "" {
		runDir = filepath.Join(a.runDir(taskID), "run")
	}
	wg.Go(func() { a.watch(watchCtx, tapi, taskID, runDir, marker, streamer, stop) })
	wg.Go(func() {
		select {
		case <-ctx.Done():
			stop(stopShutdown)
		case <-watchCtx.Done():
		}
	})
	var out io.Writer = streamer
	if a.cfg.Console != nil {
		console := redact.NewWriter(a.cfg.Console, secrets)
		defer console.Close()
		out = io.MultiWriter(streamer, console)
	}
	out = countingWriter{io.MultiWriter(out, setup), a.cfg.Metrics}
	env := append(append(append([]string{}, a.cfg.ChildEnv...), slot.Env...), "CLEARML_WORKER_ID="+slot.WorkerID, "TRAINS_WORKER_ID="+slot.WorkerID,
		DaemonReportsEnv+"=1")
	if len(a.cfg.Tags) > 0 {
		env = append(env, "CLEARML_WORKER_TAGS="+strings.Join(a.cfg.Tags, " "))
	}
	if ownerToken != "" {
		env = append(env, "CLEARML_AUTH_TOKEN="+ownerToken)
	}
	spec := executor.Spec{Argv: a.cfg.ChildArgv(taskID), Env: env, GracePeriod: a.cfg.GracePeriod, Marker: marker}
	spec.RunDir = runDir
	if a.cfg.LostCommand != nil {
		spec.OnLost = a.cfg.LostCommand(taskID, marker, a.cfg.Launcher != nil)
	}
	var exec Executor = a.exec
	var launchErr error
	if l := a.cfg.Launcher; l != nil {
		exec = l
		if res == nil {
			var cleanup func()
			spec, cleanup, launchErr = l.Launch(runCtx, tapi, taskID, spec, streamer.Log)
			if cleanup != nil {
				defer cleanup()
			}
		}
	}
	var exit executor.Exit
	var err error
	switch {
	case launchErr != nil:
		err = launchErr
	case res != nil:
		exit, err = exec.Attach(runCtx, spec, res.resume.SourceOffset, out)
	default:
		exit, err = exec.Run(runCtx, spec, out)
	}
	stopWatch()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !exit.Cancelled {
		reason = noStop
	}
	return reason, exit, err
}

// taskSession returns the client for a task's own calls: the daemon's, or
// with --use-owner-token one that acts as the task's owner, and that
// owner's token for the task process.
func (a *Agent) taskSession(ctx context.Context, owner string) (*apiclient.Client, string, error) {
	if !a.cfg.UseOwnerToken {
		return a.api, "", nil
	}
	if owner == "" {
		return nil, "", fmt.Errorf("the server did not say who owns the task")
	}
	token, err := a.api.TokenFor(ctx, owner)
	if err != nil {
		return nil, "", err
	}
	c, err := a.api.WithToken(token)
	if err != nil {
		return nil, "", err
	}
	return c, token, nil
}

// taskSecrets are the secrets masked in a task's log: the daemon's, and
// the values of the task's secret-named Environment parameters (the
// task's process gets them as variables, and may print them).
func (a *Agent) taskSecrets(ctx context.Context, tapi *apiclient.Client, taskID string) []string {
	a.mu.Lock()
	secrets := append([]string(nil), a.cfg.Secrets...)
	a.mu.Unlock()
	t, err := tapi.Task(ctx, taskID)
	if err != nil {
		return secrets
	}
	var env []string
	for name, p := range t.Hyperparams["Environment"] {
		env = append(env, name+"="+p.Value)
	}
	return append(secrets, redact.EnvSecrets(env)...)
}
