package agent

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/logstream"
)

// How a run ends: the watch for an abort while it runs, and the final
// status it reports.

// watch polls the task's status for an abort (spec 2.8 step 1) and pings it.
// On a server with the "task_wait" extension, a running task's status is
// waited on (tasks.wait_status) instead of polled: an abort is seen within
// milliseconds of the tasks.stop.
func (a *Agent) watch(ctx context.Context, tapi *apiclient.Client, taskID, runDir, marker string, streamer *logstream.Streamer, stop func(stopReason)) {
	t := time.NewTicker(a.cfg.AbortCheckInterval)
	defer t.Stop()
	lastPing := time.Time{}
	resets := 0
	held := tapi.HasExtension("task_wait")
	status, message, err := tapi.TaskStatus(ctx, taskID)
	for {
		switch {
		case ctx.Err() != nil:
			return
		case apiclient.IsNotFound(err):
			streamer.Log("ERROR", "Task not found: stopping the task process")
			stop(stopNotFound)
			return
		case err != nil:
			a.log.Debug("checking task status", "task", taskID, "err", err)
		case status == api.StatusInProgress && strings.Contains(message, "stopping"):
			streamer.Log("ERROR", "User aborted: stopping task "+taskID)
			stop(stopAborted)
			return
		case status == api.StatusCreated:
			resets++
			streamer.Log("WARNING", fmt.Sprintf("Warning: Task %s was reset! if state is consistent we shall terminate (%d/4).", taskID, resets))
			if resets > 4 {
				stop(stopReset)
				return
			}
		case status == api.StatusClosed || status == api.StatusStopped || status == api.StatusFailed ||
			status == api.StatusPublished || status == api.StatusQueued:
			streamer.Log("WARNING", fmt.Sprintf("Task status changed unexpectedly (status: %s), terminating task process.", status))
			stop(stopChanged)
			return
		default:
			resets = 0
		}
		if a.cfg.TaskPingInterval > 0 && time.Since(lastPing) >= a.cfg.TaskPingInterval {
			if err := tapi.Ping(ctx, taskID); err != nil && ctx.Err() == nil {
				a.log.Debug("pinging task", "task", taskID, "err", err)
			}
			lastPing = time.Now()
		}
		if a.cfg.Metrics != nil {
			cpu, rss := executor.Usage(runDir, marker)
			a.cfg.Metrics.TaskUsage(taskID, cpu, rss)
		}
		if held && err == nil && status == api.StatusInProgress {
			// Held until the status changes; back in time for the next
			// ping (and the usage sample).
			wait := watchWait
			if a.cfg.Metrics != nil {
				wait = min(wait, 5*time.Second) // the usage gauges stay fresh
			}
			if a.cfg.TaskPingInterval > 0 {
				wait = min(wait, max(a.cfg.AbortCheckInterval, a.cfg.TaskPingInterval-time.Since(lastPing)))
			}
			status, message, err = tapi.WaitTaskStatus(ctx, taskID, status, message, wait)
			if err == nil || apiclient.IsNotFound(err) {
				continue
			}
			// An error: fall back to the poll's pace for this round.
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		status, message, err = tapi.TaskStatus(ctx, taskID)
	}
}

// watchWait bounds one held status check (tasks.wait_status).
const watchWait = 20 * time.Second

// report sends the task's final status from how it ended (spec 2.8.2,
// with the fixes of section 7: a shutdown is "stopped", never "completed").
func (a *Agent) report(ctx context.Context, tapi *apiclient.Client, slot *Slot, taskID string, streamer *logstream.Streamer, reason stopReason, exit executor.Exit, runErr error, setupFailure string, closeLog func()) string {
	end := func(endpoint, why string) {
		closeLog()
		a.finish(ctx, tapi, slot, taskID, endpoint, why)
	}
	switch {
	case runErr != nil:
		streamer.Log("ERROR", "Failed starting the task process: "+runErr.Error())
		end("tasks.failed", "setup failed: "+runErr.Error())
		return api.StatusFailed
	case reason == stopAborted:
		streamer.Log("INFO", "Process aborted by user")
		end("tasks.stopped", "task was stopped by tasks.stop")
		return api.StatusStopped
	case reason == stopShutdown:
		streamer.Log("WARNING", "Process stopped: agent shutdown")
		end("tasks.stopped", "agent shutdown")
		return api.StatusStopped
	case reason == stopChanged || reason == stopReset || reason == stopNotFound:
		// Someone else decided the task's status; leave it.
		return "changed"
	case exit.Lost:
		// The task's supervisor went without recording how the task
		// ended (killed with it), or stopped it because no daemon followed
		// it: its exit code says nothing about the task's code.
		streamer.Log("ERROR", "Process lost: its supervisor ended without recording how it exited (killed with it, or no daemon followed it)")
		end("tasks.failed", reasonAgentLost)
		return api.StatusFailed
	case exit.Code == 0:
		streamer.Log("INFO", "Process completed successfully")
		end("tasks.completed", "worker execution done")
		return api.StatusCompleted
	case setupFailure != "" && exit.Code != 0:
		// The task process said why it could not start (and said it in
		// the log); the status follows the log.
		end("tasks.failed", setupFailure)
		return api.StatusFailed
	case exit.Code == -2 || exit.Code == 254 || exit.Code == -int(syscall.SIGTERM):
		streamer.Log("INFO", "Process terminated by user")
		end("tasks.stopped", "user abort")
		return api.StatusStopped
	default:
		why := fmt.Sprintf("worker execution exit code %d", exit.Code)
		if exit.Signal != 0 {
			why += fmt.Sprintf(" (killed by signal %s)", signalName(exit.Signal))
		}
		streamer.Log("ERROR", fmt.Sprintf("Process failed, exit code %d", exit.Code))
		end("tasks.failed", why)
		return api.StatusFailed
	}
}

func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT",
		syscall.SIGSEGV: "SIGSEGV", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE"}
	if n, ok := names[s]; ok {
		return n
	}
	return s.String()
}

// finish sends a final status call. A task that its own process already
// failed keeps that failure and its reason.
func (a *Agent) finish(ctx context.Context, tapi *apiclient.Client, slot *Slot, taskID, endpoint, reason string) {
	if status, _, err := tapi.TaskStatus(ctx, taskID); err == nil && status == api.StatusFailed {
		return
	}
	err := tapi.SetStatus(ctx, endpoint, taskID, false, reason, "Changed by clearml-agent "+slot.WorkerID, apiclient.Final)
	if err != nil {
		a.log.Warn("could not update task status", "task", taskID, "endpoint", endpoint, "reason", reason, "err", err)
	}
}
