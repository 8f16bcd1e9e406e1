package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/executor"
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
	workerID := firstNonEmpty(os.Getenv("CLEARML_WORKER_ID"), cfg.Agent.WorkerID)
	if workerID == "" {
		workerID = fmt.Sprintf("%s:%d", cfg.Agent.WorkerName, os.Getpid())
	}
	return &execution{cfg: cfg, log: log, client: client, workerID: workerID}, nil
}

// prepare marks the task started and prepares its process.
func (x *execution) prepare(ctx context.Context, opts *args.Execute, stdout io.Writer) (executor.Launch, error) {
	client := x.client
	msg := "Changed by clearml-agent " + x.workerID
	task, err := client.Task(ctx, opts.ID)
	if err != nil {
		return executor.Launch{}, fmt.Errorf("reading task %s: %w", opts.ID, err)
	}
	if n, err := client.Dequeue(ctx, task.ID); err == nil && n >= 1 {
		client.SetStatus(ctx, "tasks.started", task.ID, true, "starting execution soon", msg, apiclient.Default)
	}
	if err := client.SetStatus(ctx, "tasks.started", task.ID, true, "worker started execution", msg, apiclient.Default); err != nil {
		return executor.Launch{}, fmt.Errorf("marking task started: %w", err)
	}
	fmt.Fprintf(stdout, "Running task id [%s]:\n", task.ID)
	prep, err := prepareTask(ctx, x.cfg, client, task, taskOptions{optimization: opts.Optimization, standalone: opts.StandaloneMode}, stdout, x.log)
	if err != nil && ctx.Err() != nil {
		// Stopped during setup (an abort, the daemon's shutdown): the
		// daemon that stops us reports the task's status and why, not a
		// setup failure.
		fmt.Fprintln(stdout, "clearml-agent: task setup interrupted by a stop signal")
		return executor.Launch{}, &exitError{code: 128 + int(syscall.SIGTERM), err: errSilent}
	}
	if err != nil {
		// A setup failure: say exactly what went wrong on the task.
		reason := err.Error()
		var se *setupError
		if !errors.As(err, &se) {
			reason = "setup failed: " + reason
		}
		return executor.Launch{}, setupFailed(ctx, client, stdout, task.ID, reason, msg)
	}
	client.SetStatus(ctx, "tasks.started", task.ID, true, "worker starting task execution", msg, apiclient.Default)
	env := taskEnv(task, opts.LogLevel, prep.path)
	fmt.Fprintf(stdout, "Starting Task Execution:\n[%s]$ %s\n", prep.dir, strings.Join(prep.argv, " "))
	// A relative program is relative to the task's folder, which the
	// process starts in.
	name := prep.argv[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(prep.dir, name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return executor.Launch{}, setupFailed(ctx, client, stdout, task.ID, "setup failed: "+err.Error(), msg)
	}
	return executor.Launch{Path: path, Argv: prep.argv, Env: env, Dir: prep.dir}, nil
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

// taskEnv is the task process's environment (spec 3.7).
func taskEnv(t *api.Task, logLevel string, pythonPath []string) []string {
	var env []string
	// In a process the git credentials are the agent's, not the task's. A
	// container is the task's own: there they stay for its own git use
	// (as upstream's container configuration holds them).
	inContainer := os.Getenv("CLEARML_AGENT_IN_CONTAINER") == "1"
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CLEARML_AGENT_GIT_ASKPASS_") || strings.HasPrefix(kv, "CLEARML_AGENT_IN_CONTAINER=") ||
			!inContainer && (strings.HasPrefix(kv, "CLEARML_AGENT_GIT_PASS=") || strings.HasPrefix(kv, "CLEARML_AGENT_GIT_USER=")) {
			continue
		}
		env = append(env, kv)
	}
	set := func(k, v string) { env = append(env, k+"="+v) }
	set("CLEARML_TASK_ID", t.ID)
	set("TRAINS_TASK_ID", t.ID)
	set("CLEARML_LOG_TASK_TO_BACKEND", "0")
	set("PYTHONUNBUFFERED", "1")
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pythonPath = append(pythonPath, old)
	}
	if len(pythonPath) > 0 {
		set("PYTHONPATH", strings.Join(pythonPath, string(os.PathListSeparator)))
	}
	if logLevel != "" {
		set("CLEARML_LOG_LEVEL", strings.ToUpper(logLevel))
	}
	for name, p := range t.Hyperparams["Environment"] {
		if name != "" && !strings.ContainsAny(name, "=\x00") {
			set(name, p.Value)
		}
	}
	return env
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

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
