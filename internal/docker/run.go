package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/executor"
)

// Client runs short docker commands (ps, stop, rm, inspect).
type Client struct {
	// Bin is the docker CLI (default "docker" on PATH).
	Bin string
	// Env is the CLI's environment (default: this process's).
	Env []string
}

// Find returns the path of the docker CLI, or the error upstream gives.
func Find() (string, error) {
	p, err := exec.LookPath("docker")
	if err != nil {
		return "", errors.New("running in Docker mode, 'docker' command was not found")
	}
	return p, nil
}

func (c Client) bin() string {
	if c.Bin == "" {
		return "docker"
	}
	return c.Bin
}

// Output runs `docker args...` and returns its standard output.
func (c Client) Output(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin(), args...)
	if c.Env != nil {
		cmd.Env = c.Env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), fmt.Errorf("docker %s: %s", args[0], msg)
	}
	return stdout.String(), nil
}

// Containers lists the ids of containers (running or not) with a label.
func (c Client) Containers(ctx context.Context, label string) ([]string, error) {
	out, err := c.Output(ctx, "ps", "-aq", "--no-trunc", "--filter", "label="+label)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// Remove force-removes containers (running ones are killed).
func (c Client) Remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.Output(ctx, append([]string{"rm", "-f", "-v"}, ids...)...)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	return err
}

// Stop stops containers: SIGTERM (their stop signal), then SIGKILL after
// grace.
func (c Client) Stop(ctx context.Context, grace time.Duration, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	secs := max(int((grace+time.Second-1)/time.Second), 0)
	ctx, cancel := context.WithTimeout(ctx, grace+60*time.Second)
	defer cancel()
	_, err := c.Output(ctx, append([]string{"stop", "-t", strconv.Itoa(secs)}, ids...)...)
	if err != nil && strings.Contains(err.Error(), "No such container") {
		return nil
	}
	return err
}

// Runner runs one task's `docker run` command line and supervises the
// container. It satisfies the daemon's executor interface: the docker CLI
// runs under the executor's shim (so the run survives a daemon restart),
// and cancelling the context stops the container with the grace period
// (docker stop -t), then kills it; whatever happens, no container of the
// run is left.
type Runner struct {
	Client Client
	Exec   *executor.Executor
	Log    *slog.Logger
}

// ExitDockerError is the docker CLI's status when docker itself failed
// (bad option, image not found, daemon unreachable).
const ExitDockerError = 125

// Run starts spec.Argv, a command line from RunSpec.Argv whose labels
// include LabelRun=spec.Marker, streams the container's output to out and
// waits for it to end.
func (r *Runner) Run(ctx context.Context, spec executor.Spec, out io.Writer) (executor.Exit, error) {
	return r.run(ctx, spec, out, -1)
}

// Attach follows a container run started by an earlier daemon.
func (r *Runner) Attach(ctx context.Context, spec executor.Spec, offset int64, out io.Writer) (executor.Exit, error) {
	return r.run(ctx, spec, out, offset)
}

func (r *Runner) run(ctx context.Context, spec executor.Spec, out io.Writer, attachAt int64) (executor.Exit, error) {
	if len(spec.Argv) == 0 || spec.Marker == "" {
		return executor.Exit{}, errors.New("running container: empty command or no run marker")
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	label := LabelRun + "=" + spec.Marker
	spec.Stop = func(ctx context.Context, grace time.Duration) { r.stop(ctx, label, grace, log) }
	tail := &tailBuffer{max: 4096}
	w := io.MultiWriter(out, tail)
	var exit executor.Exit
	var err error
	if attachAt >= 0 {
		exit, err = r.Exec.Attach(ctx, spec, attachAt, w)
	} else {
		exit, err = r.Exec.Run(ctx, spec, w)
	}
	// The CLI has exited; the container may not have (the CLI was killed,
	// or --rm had not finished). Remove whatever is left of the run.
	final := context.WithoutCancel(ctx)
	if ids, lerr := r.Client.Containers(final, label); lerr != nil {
		log.Warn("listing the task's containers", "err", lerr)
	} else if len(ids) > 0 {
		if rerr := r.Client.Remove(final, ids...); rerr != nil {
			log.Warn("removing the task's container", "err", rerr)
		}
	}
	if err != nil {
		return exit, err
	}
	if exit.Code == ExitDockerError && !exit.Cancelled {
		return exit, fmt.Errorf("docker could not run the container: %s", dockerCause(tail.String()))
	}
	return exit, nil
}

// stop stops the run's container with docker stop and the grace period,
// once the container exists.
func (r *Runner) stop(ctx context.Context, label string, grace time.Duration, log *slog.Logger) {
	deadline := time.Now().Add(grace + 30*time.Second)
	for time.Now().Before(deadline) {
		ids, err := r.Client.Containers(ctx, label)
		if err == nil && len(ids) > 0 {
			log.Info("stopping the task's container", "container", shortID(ids[0]), "grace", grace)
			if err := r.Client.Stop(ctx, grace, ids...); err != nil {
				log.Warn("stopping the task's container", "err", err)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func shortID(id string) string { return id[:min(len(id), 12)] }

// dockerCause is the line of docker's output that says why a container
// could not run ("Error response from daemon: pull access denied ..."),
// not its closing hints ("Run 'docker run --help' ...", a usage line).
func dockerCause(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "Run 'docker") || strings.HasPrefix(l, "See 'docker") || strings.HasPrefix(l, "Usage:") {
			continue
		}
		return strings.TrimPrefix(l, "docker: ")
	}
	return "docker run said nothing (exit code 125)"
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
