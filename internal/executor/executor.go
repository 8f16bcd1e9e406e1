// Package executor runs a task's process: in its own process group, with
// its combined output streamed to a writer, and with an abort that really
// stops every process the task started. Cancelling the context sends
// SIGTERM to the whole task, waits the grace period, then sends SIGKILL.
//
// "The whole task" is the process group of the child plus every process
// that carries the run's marker in its environment (RunMarkerEnv), which
// catches grandchildren that left the group, double-forked daemons
// included. (Where cgroup v2 can be written, a cgroup would be the
// stronger fence; this machine class has cgroup v1, so the marker scan is
// the portable mechanism.)
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RunMarkerEnv is the environment variable that tags every process of a run.
const RunMarkerEnv = "CLEARML_AGENT_RUN_MARKER"

// Spec describes one process to run.
type Spec struct {
	Argv []string
	Env  []string // the complete environment; RunMarkerEnv is added
	Dir  string
	// GracePeriod is how long processes get between SIGTERM and SIGKILL
	// when the run is cancelled (default 10 s).
	GracePeriod time.Duration
	// Marker identifies the run's processes; required.
	Marker string
}

// Exit is how the process ended.
type Exit struct {
	// Code follows Python's Popen convention: the exit status, or -N when
	// killed by signal N.
	Code int
	// Signal is the signal that ended the process, if any.
	Signal syscall.Signal
	// Cancelled is true when the run ended because its context was
	// cancelled (an abort or a shutdown).
	Cancelled bool
}

// Executor runs processes.
type Executor struct {
	Log *slog.Logger
}

// Run starts spec, copies its combined stdout and stderr to out, and waits.
// An error means the process could not be started; once it ran, the
// outcome is in Exit.
func (e *Executor) Run(ctx context.Context, spec Spec, out io.Writer) (Exit, error) {
	if len(spec.Argv) == 0 {
		return Exit{}, errors.New("running task process: empty command")
	}
	if spec.Marker == "" {
		return Exit{}, errors.New("running task process: no run marker")
	}
	grace := spec.GracePeriod
	if grace <= 0 {
		grace = 10 * time.Second
	}
	log := e.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return Exit{}, fmt.Errorf("creating output pipe: %w", err)
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(append([]string{}, spec.Env...), RunMarkerEnv+"="+spec.Marker)
	cmd.Dir = spec.Dir
	// One pipe for both streams keeps stdout and stderr in write order.
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return Exit{}, fmt.Errorf("starting %s: %w", spec.Argv[0], err)
	}
	pw.Close() // the child holds the write end now
	pgid := cmd.Process.Pid

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(out, pr)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var exit Exit
	var waitErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		exit.Cancelled = true
		log.Info("stopping task processes", "pid", pgid, "grace", grace)
		signalRun(pgid, spec.Marker, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case waitErr = <-waited:
			t.Stop()
		case <-t.C:
			log.Warn("task processes did not stop within the grace period: killing them", "pid", pgid)
			signalRun(pgid, spec.Marker, syscall.SIGKILL)
			waitErr = <-waited
		}
	}
	// Whatever the main process left behind goes too: background children
	// get a short grace, then SIGKILL.
	if n := signalRun(pgid, spec.Marker, syscall.SIGTERM); n > 0 {
		log.Info("stopping processes the task left behind", "count", n)
		deadline := time.Now().Add(min(grace, 2*time.Second))
		for time.Now().Before(deadline) && len(findRun(pgid, spec.Marker)) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		signalRun(pgid, spec.Marker, syscall.SIGKILL)
	}
	// Drain the output; a process we could not kill may still hold the
	// pipe, so do not wait for ever.
	select {
	case <-copied:
	case <-time.After(3 * time.Second):
		pr.Close()
		<-copied
	}
	pr.Close()
	fillExit(&exit, cmd.ProcessState, waitErr)
	return exit, nil
}

func fillExit(exit *Exit, ps *os.ProcessState, waitErr error) {
	if ps == nil {
		exit.Code = -1
		return
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		exit.Signal = ws.Signal()
		exit.Code = -int(ws.Signal())
		return
	}
	exit.Code = ps.ExitCode()
}

// signalRun signals the process group and every process with the marker,
// and returns how many processes it signalled (the group counts as one
// when it still exists).
func signalRun(pgid int, marker string, sig syscall.Signal) int {
	n := 0
	if err := syscall.Kill(-pgid, sig); err == nil {
		n++
	}
	for _, pid := range findMarked(marker) {
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// findRun lists live processes of the run: the group's members and the
// marked ones.
func findRun(pgid int, marker string) []int {
	pids := findMarked(marker)
	if err := syscall.Kill(-pgid, 0); err == nil {
		pids = append(pids, -pgid)
	}
	return pids
}

var scanMu sync.Mutex

// findMarked scans /proc for processes whose environment holds the marker.
// Zombies (which have no environment left) are not returned.
func findMarked(marker string) []int {
	scanMu.Lock()
	defer scanMu.Unlock()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := RunMarkerEnv + "=" + marker
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == needle {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// Usage sums the CPU time and resident memory of a run's live processes.
func Usage(marker string) (cpu time.Duration, rssBytes int64) {
	pageSize := int64(os.Getpagesize())
	const clkTck = 100 // USER_HZ
	for _, pid := range findMarked(marker) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 22 {
			continue
		}
		var utime, stime, rss int64
		fmt.Sscan(f[11], &utime)
		fmt.Sscan(f[12], &stime)
		fmt.Sscan(f[21], &rss)
		cpu += time.Duration(utime+stime) * time.Second / clkTck
		rssBytes += rss * pageSize
	}
	return cpu, rssBytes
}
