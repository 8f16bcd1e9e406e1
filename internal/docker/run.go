package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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
// container. It satisfies the daemon's executor interface: cancelling the
// context stops the container with the grace period (docker stop -t),
// then kills it; whatever happens, no container of the run is left.
type Runner struct {
	Client Client
	Log    *slog.Logger
}

// ExitDockerError is the docker CLI's status when docker itself failed
// (bad option, image not found, daemon unreachable).
const ExitDockerError = 125

// Run starts spec.Argv, a command line from RunSpec.Argv whose labels
// include LabelRun=spec.Marker, streams the container's output to out and
// waits for it to end.
func (r *Runner) Run(ctx context.Context, spec executor.Spec, out io.Writer) (executor.Exit, error) {
	if len(spec.Argv) == 0 || spec.Marker == "" {
		return executor.Exit{}, errors.New("running container: empty command or no run marker")
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	grace := spec.GracePeriod
	if grace <= 0 {
		grace = 10 * time.Second
	}
	label := LabelRun + "=" + spec.Marker
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	pr, pw, err := os.Pipe()
	if err != nil {
		return executor.Exit{}, fmt.Errorf("creating output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: a Ctrl-C meant for the daemon does not reach
	// the docker CLI.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return executor.Exit{}, fmt.Errorf("starting docker: %w", err)
	}
	pw.Close()
	tail := &tailBuffer{max: 4096}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(io.MultiWriter(out, tail), pr)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var exit executor.Exit
	final := context.WithoutCancel(ctx)
	select {
	case <-waited:
	case <-ctx.Done():
		exit.Cancelled = true
		r.stop(final, label, grace, waited, cmd, log)
	}
	// The CLI has exited; the container may not have (the CLI was killed,
	// or --rm had not finished). Remove whatever is left of the run.
	if ids, err := r.Client.Containers(final, label); err != nil {
		log.Warn("listing the task's containers", "err", err)
	} else if len(ids) > 0 {
		if err := r.Client.Remove(final, ids...); err != nil {
			log.Warn("removing the task's container", "err", err)
		}
	}
	select {
	case <-copied:
	case <-time.After(3 * time.Second):
		pr.Close()
		<-copied
	}
	pr.Close()
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		exit.Signal, code = ws.Signal(), -int(ws.Signal())
	}
	exit.Code = code
	if code == ExitDockerError && !exit.Cancelled {
		return exit, fmt.Errorf("docker could not run the container (docker run exit code %d): %s", code, lastLine(tail.String()))
	}
	return exit, nil
}

// stop stops the run's container: docker stop with the grace period once
// the container exists; the CLI is killed if it does not exit after that.
func (r *Runner) stop(ctx context.Context, label string, grace time.Duration, waited <-chan error, cmd *exec.Cmd, log *slog.Logger) {
	deadline := time.Now().Add(grace + 30*time.Second)
	for time.Now().Before(deadline) {
		ids, err := r.Client.Containers(ctx, label)
		if err == nil && len(ids) > 0 {
			log.Info("stopping the task's container", "container", shortID(ids[0]), "grace", grace)
			if err := r.Client.Stop(ctx, grace, ids...); err != nil {
				log.Warn("stopping the task's container", "err", err)
			}
			break
		}
		select {
		case <-waited:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		log.Warn("docker run did not exit after the container stopped: killing it")
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
	}
}

func shortID(id string) string { return id[:min(len(id), 12)] }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return "no output"
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
