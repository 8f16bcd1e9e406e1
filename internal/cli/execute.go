package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
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
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, firstNonEmpty(opts.LogLevel, "INFO"))
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	client, err := newClient(ctx, cfg, log)
	if err != nil {
		return err
	}
	workerID := firstNonEmpty(os.Getenv("CLEARML_WORKER_ID"), cfg.Agent.WorkerID)
	if workerID == "" {
		workerID = fmt.Sprintf("%s:%d", cfg.Agent.WorkerName, os.Getpid())
	}
	msg := "Changed by clearml-agent " + workerID
	task, err := client.Task(ctx, opts.ID)
	if err != nil {
		return fmt.Errorf("reading task %s: %w", opts.ID, err)
	}
	if n, err := client.Dequeue(ctx, task.ID); err == nil && n >= 1 {
		client.SetStatus(ctx, "tasks.started", task.ID, true, "starting execution soon", msg, apiclient.Default)
	}
	if err := client.SetStatus(ctx, "tasks.started", task.ID, true, "worker started execution", msg, apiclient.Default); err != nil {
		return fmt.Errorf("marking task started: %w", err)
	}
	argvTask, dir, err := taskCommand(task)
	if err != nil {
		// A setup failure: say exactly what went wrong on the task.
		fmt.Fprintf(stdout, "clearml-agent: cannot run task %s: %v\n", task.ID, err)
		client.SetStatus(context.WithoutCancel(ctx), "tasks.failed", task.ID, true, "setup failed: "+err.Error(), msg, apiclient.Final)
		return &exitError{code: 1, err: err}
	}
	client.SetStatus(ctx, "tasks.started", task.ID, true, "worker starting task execution", msg, apiclient.Default)
	env := taskEnv(task, opts.LogLevel, dir)
	fmt.Fprintf(stdout, "Starting Task Execution:\n%s\n", strings.Join(argvTask, " "))
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("entering working directory %s: %w", dir, err)
	}
	path, err := exec.LookPath(argvTask[0])
	if err != nil {
		client.SetStatus(context.WithoutCancel(ctx), "tasks.failed", task.ID, true, "setup failed: "+err.Error(), msg, apiclient.Final)
		return &exitError{code: 1, err: err}
	}
	return syscall.Exec(path, argvTask, env)
}

// exitError carries an exit status to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) ExitCode() int { return e.code }

// taskCommand builds the task's command line and working folder. Tasks
// with a git repository need the environment builder (git checkout,
// virtualenv), which this build does not have yet: they fail with a reason
// that says so.
func taskCommand(t *api.Task) ([]string, string, error) {
	if t.Script == nil {
		return nil, "", errors.New("can not run task without script information")
	}
	str := func(k string) string { s, _ := t.Script[k].(string); return strings.TrimSpace(s) }
	if repo := str("repository"); repo != "" {
		return nil, "", fmt.Errorf("task uses repository %q: git checkout and virtualenv setup are not available in this build yet", repo)
	}
	entry, diff := str("entry_point"), t.Script["diff"]
	script, _ := diff.(string)
	if strings.TrimSpace(script) == "" {
		return nil, "", errors.New("task has neither a repository nor a script (script.diff is empty)")
	}
	dir := filepath.Join(os.TempDir(), ".clearml_agent_task_"+t.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("creating task folder: %w", err)
	}
	name := filepath.Base(entry)
	if name == "" || name == "." || name == "/" || strings.HasPrefix(entry, "-m ") {
		name = "script.py"
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(script), 0o700); err != nil {
		return nil, "", fmt.Errorf("writing task script: %w", err)
	}
	switch {
	case strings.HasSuffix(name, ".sh"):
		return []string{"bash", file}, dir, nil
	case strings.HasSuffix(name, ".py"):
		py, err := findPython(str("binary"))
		if err != nil {
			return nil, "", err
		}
		return []string{py, "-u", file}, dir, nil
	default:
		if b := str("binary"); b != "" && !strings.HasPrefix(filepath.Base(b), "python") {
			return []string{b, file}, dir, nil
		}
		py, err := findPython(str("binary"))
		if err != nil {
			return nil, "", err
		}
		return []string{py, "-u", file}, dir, nil
	}
}

// findPython finds the interpreter the task asks for ("python3.11"),
// falling back to python3 and python.
func findPython(binary string) (string, error) {
	candidates := []string{}
	if binary != "" {
		candidates = append(candidates, filepath.Base(binary))
	}
	candidates = append(candidates, "python3", "python")
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Python interpreter found (looked for %s)", strings.Join(candidates, ", "))
}

// taskEnv is the task process's environment (spec 3.7).
func taskEnv(t *api.Task, logLevel, dir string) []string {
	env := os.Environ()
	set := func(k, v string) { env = append(env, k+"="+v) }
	set("CLEARML_TASK_ID", t.ID)
	set("TRAINS_TASK_ID", t.ID)
	set("PYTHONUNBUFFERED", "1")
	set("PYTHONPATH", dir+string(os.PathListSeparator)+os.Getenv("PYTHONPATH"))
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
