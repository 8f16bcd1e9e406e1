package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/taskprep"
)

// runExecute runs one task in this process (spec 3): it marks the task
// started, prepares its command, and replaces itself with the task's
// process, so that signals and exit status are the task's own.
func runExecute(g args.Global, argv []string, stdout, stderr io.Writer) error {
	opts, err := args.ParseExecute(argv)
	if err != nil {
		return &UsageError{Msg: "execute: " + err.Error()}
	}
	if opts.Help {
		fmt.Fprint(stdout, args.ExecuteUsage())
		return errHelp
	}
	if opts.ID == "" {
		return &UsageError{Msg: "execute: --id is required"}
	}
	ctx, stop := signalContext()
	defer stop()
	x, err := startExecute(ctx, g, opts, stderr)
	if err != nil {
		return err
	}
	if opts.FullMonitoring {
		return runMonitored(ctx, g, x.cfg, x.client, opts, x.workerID, stdout, x.log)
	}
	l, err := x.prepare(ctx, opts, stdout)
	if err != nil {
		return err
	}
	if err := os.Chdir(l.Dir); err != nil {
		return fmt.Errorf("entering working directory %s: %w", l.Dir, err)
	}
	return syscall.Exec(l.Path, l.Argv, l.Env)
}

// shimExecute lets a task's shim run `execute` in its own process up to
// the start of the task's process (executor.Preparer): argv is this
// binary's execute of one task, without --full-monitoring.
func shimExecute(argv []string) (executor.Prepare, bool) {
	self, err := os.Executable()
	if err != nil || len(argv) < 2 || argv[0] != self {
		return nil, false
	}
	g, cmd, rest, err := args.ParseCommandLine(argv[1:])
	if err != nil || cmd != "execute" || g.Version || g.Help {
		return nil, false
	}
	opts, err := args.ParseExecute(rest)
	if err != nil || opts.Help || opts.ID == "" || opts.FullMonitoring {
		return nil, false
	}
	return func(ctx context.Context, out *os.File) (executor.Launch, error) {
		x, err := startExecute(ctx, g, opts, out)
		var l executor.Launch
		if err == nil {
			l, err = x.prepare(ctx, opts, out)
			x.client.CloseIdleConnections()
		}
		if err == nil {
			if st, serr := os.Stat(l.Dir); serr != nil || !st.IsDir() {
				err = fmt.Errorf("entering working directory %s: %w", l.Dir, cmp.Or[error](serr, syscall.ENOTDIR))
			}
		}
		if err != nil {
			// Said as the command would have, with its exit status.
			return l, &exitError{code: reportError(err, out), err: errSilent}
		}
		return l, nil
	}, true
}

// execution is an execute between its start and the task's.
type execution struct {
	cfg      *config.Config
	log      *slog.Logger
	client   *apiclient.Client
	workerID string
}

// startExecute reads the configuration and signs in.
func startExecute(ctx context.Context, g args.Global, opts *args.Execute, stderr io.Writer) (*execution, error) {
	cfg, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	// execute's output is the task's log: only warnings from the agent
	// itself go there (--log-level is the task's CLEARML_LOG_LEVEL), unless
	// --debug.
	agentLevel := "WARNING"
	if g.Debug {
		agentLevel = "DEBUG"
	}
	log, err := newLogger(g, stderr, agentLevel)
	if err != nil {
		return nil, err
	}
	client, err := newClient(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	workerID := cmp.Or(os.Getenv("CLEARML_WORKER_ID"), cfg.Agent.WorkerID)
	if workerID == "" {
		workerID = fmt.Sprintf("%s:%d", cfg.Agent.WorkerName, os.Getpid())
	}
	return &execution{cfg: cfg, log: log, client: client, workerID: workerID}, nil
}

// prepare marks the task started and prepares its process
// (taskprep.Launch); a task that cannot run is failed here, with the
// exit status execute gives it.
func (x *execution) prepare(ctx context.Context, opts *args.Execute, stdout io.Writer) (executor.Launch, error) {
	msg := "Changed by clearml-agent " + x.workerID
	l, err := taskprep.Launch(ctx, x.cfg, x.client, taskprep.Request{TaskID: opts.ID, Optimization: opts.Optimization,
		Standalone: opts.StandaloneMode, LogLevel: opts.LogLevel, Message: msg}, stdout, x.log)
	var f *taskprep.Failure
	switch {
	case errors.Is(err, taskprep.ErrInterrupted):
		// Stopped during setup (an abort, the daemon's shutdown): the
		// daemon that stops us reports the task's status and why, not a
		// setup failure.
		return l, &exitError{code: 128 + int(syscall.SIGTERM), err: errSilent}
	case errors.As(err, &f):
		// A setup failure: say exactly what went wrong on the task.
		return l, setupFailed(ctx, x.client, stdout, opts.ID, f.Reason, msg)
	}
	return l, err
}

// setupFailed says once, in the task's log, why the task cannot run, and
// fails it: under a daemon, the daemon does (after the whole log is
// delivered, reading the reason from that line); alone, execute does.
func setupFailed(ctx context.Context, client *apiclient.Client, stdout io.Writer, taskID, reason, msg string) error {
	reason = strings.Join(strings.Fields(reason), " ") // one line
	fmt.Fprintf(stdout, "%s%s\n", agent.SetupFailurePrefix(taskID), reason)
	if os.Getenv(agent.DaemonReportsEnv) != "1" {
		client.SetStatus(context.WithoutCancel(ctx), "tasks.failed", taskID, true, reason, msg, apiclient.Final)
	}
	return &exitError{code: 1, err: errSilent}
}

// exitError carries an exit status to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// retryLogin logs in, retrying for a while when the server is not up yet.
func retryLogin(ctx context.Context, c *apiclient.Client) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = c.Login(ctx); err == nil || !apiclient.IsRetryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	return err
}
