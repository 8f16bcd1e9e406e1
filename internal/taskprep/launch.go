package taskprep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/executor"
)

// Request is one task to prepare, with the execute flags that shape it.
type Request struct {
	TaskID       string
	Optimization int    // -O count
	Standalone   bool   // --standalone-mode: no installs
	LogLevel     string // the task's CLEARML_LOG_LEVEL
	// Message goes with the status changes ("Changed by clearml-agent
	// <worker>").
	Message string
}

// Failure is a task that cannot run: the task fails with Reason, one
// line, which names the cause.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return f.Reason }

// ErrInterrupted: the setup was stopped (an abort, the daemon's shutdown);
// whoever stopped it reports the task's status.
var ErrInterrupted = errors.New("task setup interrupted by a stop signal")

// Launch marks the task started (as upstream's execute does, three
// times), prepares it, and returns its process: what execute replaces
// itself with, or what the task's supervisor starts. Progress and the
// phase timings go to out, the task's log. A task that cannot run is a
// *Failure; other errors are the agent's (reading the task, marking it
// started).
func Launch(ctx context.Context, cfg *config.Config, client *apiclient.Client, req Request, out io.Writer, log *slog.Logger) (executor.Launch, error) {
	task, err := client.Task(ctx, req.TaskID)
	if err != nil {
		return executor.Launch{}, fmt.Errorf("reading task %s: %w", req.TaskID, err)
	}
	if n, err := client.Dequeue(ctx, task.ID); err == nil && n >= 1 {
		client.SetStatus(ctx, "tasks.started", task.ID, true, "starting execution soon", req.Message, apiclient.Default)
	}
	if err := client.SetStatus(ctx, "tasks.started", task.ID, true, "worker started execution", req.Message, apiclient.Default); err != nil {
		return executor.Launch{}, fmt.Errorf("marking task started: %w", err)
	}
	fmt.Fprintf(out, "Running task id [%s]:\n", task.ID)
	prep, err := prepare(ctx, cfg, client, task, options{optimization: req.Optimization, standalone: req.Standalone}, out, log)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(out, "clearml-agent: "+ErrInterrupted.Error())
		return executor.Launch{}, ErrInterrupted
	}
	if err != nil {
		reason := err.Error()
		var se *setupError
		if !errors.As(err, &se) {
			reason = "setup failed: " + reason
		}
		return executor.Launch{}, &Failure{Reason: reason}
	}
	client.SetStatus(ctx, "tasks.started", task.ID, true, "worker starting task execution", req.Message, apiclient.Default)
	env := Env(task, req.LogLevel, prep.path)
	fmt.Fprintf(out, "Starting Task Execution:\n[%s]$ %s\n", prep.dir, strings.Join(prep.argv, " "))
	// A relative program is relative to the task's folder, which the
	// process starts in.
	name := prep.argv[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(prep.dir, name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return executor.Launch{}, &Failure{Reason: "setup failed: " + err.Error()}
	}
	return executor.Launch{Path: path, Argv: prep.argv, Env: env, Dir: prep.dir}, nil
}

// Env is the task process's environment (spec 3.7): this process's, less
// the agent's own git credentials outside a container, with the task's id,
// its Python path, log level and the task's Environment parameters.
func Env(t *api.Task, logLevel string, pythonPath []string) []string {
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
