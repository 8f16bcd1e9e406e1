package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/apiclient"
)

// handleSignals: SIGHUP reloads the configuration; the first SIGINT/SIGTERM drains (no new task; the running
// one finishes) and calls drained, the second aborts the running task
// (grace period, then reported stopped with reason "agent shutdown"), the
// third exits at once.
func handleSignals(sigs <-chan os.Signal, done <-chan struct{}, a *agent.Agent, cancel context.CancelFunc, reload, drained func(), log *slog.Logger) {
	n := 0
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			if s == syscall.SIGHUP {
				reload()
				continue
			}
			n++
			running := a.RunningTasks()
			switch {
			case n == 1 && running == 0:
				log.Info("signal received: stopping (no task is running)", "signal", s.String())
				a.Drain()
				drained()
			case n == 1:
				log.Info("signal received: finishing the running task, taking no new one (signal again to abort it)", "signal", s.String(), "running", running)
				a.Drain()
				drained()
			case n == 2 && running == 0:
				log.Info("second signal: stopping now", "signal", s.String())
				cancel()
			case n == 2:
				log.Warn("second signal: aborting the running task", "signal", s.String(), "running", running)
				cancel()
			default:
				log.Error("third signal: exiting now", "signal", s.String())
				os.Exit(254)
			}
		}
	}
}

// untilSignal is ctx, cancelled by a SIGINT or SIGTERM from sigs (SIGHUP
// is ignored: there is nothing to reload yet). stop ends the watch; later
// signals stay in sigs for handleSignals.
func untilSignal(ctx context.Context, sigs <-chan os.Signal) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				if s != syscall.SIGHUP {
					cancel()
					return
				}
			}
		}
	})
	return ctx, func() { close(done); wg.Wait(); cancel() }
}

// runningReport lists the daemons running on this host and what each one
// is doing, as the server knows it.
func runningReport(ctx context.Context, c *apiclient.Client) string {
	local := agent.Running("")
	if len(local) == 0 {
		return "No clearml-agent daemon is running on this host\n"
	}
	known := workerTasks(ctx, c)
	var b strings.Builder
	b.WriteString("Daemons on this host:\n")
	for _, r := range local {
		state, ok := known[r.WorkerID]
		if !ok {
			state = "not reporting to this server"
		}
		fmt.Fprintf(&b, "  - %s (pid %d): %s\n", r.WorkerID, r.PID, state)
	}
	return b.String()
}

// workerTasks says, per worker id the server knows, what it is doing:
// "idle" or "running task ID (name)".
func workerTasks(ctx context.Context, c *apiclient.Client) map[string]string {
	var resp struct {
		Workers []struct {
			ID   string `json:"id"`
			Task *struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"task"`
		} `json:"workers"`
	}
	known := map[string]string{}
	if err := c.Call(ctx, "", "workers.get_all", map[string]any{}, &resp, apiclient.Default); err == nil {
		for _, w := range resp.Workers {
			known[w.ID] = "idle"
			if w.Task != nil && w.Task.ID != "" {
				known[w.ID] = fmt.Sprintf("running task %s (%s)", w.Task.ID, w.Task.Name)
			}
		}
	}
	return known
}
