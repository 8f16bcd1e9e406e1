package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/redact"
	"github.com/goclearml/agent/internal/sysstats"
)

// runMonitored is `execute --full-monitoring`: the task runs as a one-task
// daemon would run it (its worker registered and reporting, the log
// streamed, aborts watched, the final status reported). The Kubernetes
// executor's pods run it. The exit status is 0 when the task completed (or
// was not run: --require-queue and not queued), 1 when it failed, 2 when
// it was stopped.
func runMonitored(ctx context.Context, g args.Global, cfg *config.Config, client *apiclient.Client, opts *args.Execute,
	workerID string, stdout io.Writer, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable: %w", err)
	}
	childArgv := func(task string) []string {
		a := []string{self}
		if g.ConfigFile != "" {
			a = append(a, "--config-file", g.ConfigFile)
		}
		a = append(a, "execute", "--disable-monitoring", "--log-level", opts.LogLevel)
		if opts.Optimization > 0 {
			a = append(a, "-"+strings.Repeat("O", opts.Optimization))
		}
		if opts.StandaloneMode {
			a = append(a, "--standalone-mode")
		}
		return append(a, "--id", task)
	}
	env := os.Environ()
	env = append(filterEnv(env, "CLEARML_WORKER_ID"), "CLEARML_WORKER_ID="+workerID)
	secrets := redact.Sorted(append(cfg.Secrets(), redact.EnvSecrets(env)...))
	hostname, _ := os.Hostname()
	a := agent.New(agent.Config{
		WorkerID: workerID, Hostname: hostname, ChildArgv: childArgv, ChildEnv: env,
		SpoolDir: spoolDir(workerID), Secrets: secrets, SuppressCarriageReturn: cfg.Agent.SuppressCarriageReturn,
		Console: stdout, TaskPingInterval: cfg.Agent.TaskPingInterval, StatusReportInterval: cfg.Agent.StatusReportInterval,
		GracePeriod: cfg.Agent.AbortGracePeriod,
	}, client, &executor.Executor{Log: log, Self: self}, &sysstats.Sampler{DiskPath: homeDir()}, log)
	status, err := a.RunOne(ctx, opts.ID, opts.RequireQueue)
	var nq *agent.ErrNotQueued
	switch {
	case errors.As(err, &nq):
		fmt.Fprintf(stdout, "clearml-agent: %v\n", err)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "clearml-agent: task %s ended %s\n", opts.ID, status)
	switch status {
	case api.StatusCompleted, api.StatusPublished, api.StatusPublishing, api.StatusClosed:
		return nil
	case api.StatusStopped:
		return &exitError{code: 2, err: errSilent}
	default:
		return &exitError{code: 1, err: errSilent}
	}
}
