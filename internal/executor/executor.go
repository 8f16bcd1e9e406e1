// Package executor runs a task's process: under a shim that keeps it
// going if the daemon dies (a daemon started again attaches to it), with
// its combined output written to a file the daemon follows, and with an
// abort that really stops every process the task started. Cancelling the
// context sends SIGTERM to the whole task, waits the grace period, then
// sends SIGKILL.
//
// "The whole task" is every descendant of the shim, which is a child
// subreaper: processes that double-fork, leave the process group or the
// session, or clear their environment are re-parented to it, not to init,
// so they cannot escape. Every process also carries the run's marker in
// its environment (RunMarkerEnv): a run is found by it when its shim is
// not known.
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
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
	// RunDir is the run's folder (output, status; see the shim). Empty: a
	// temporary one, removed afterwards.
	RunDir string
	// Stop, when set, stops the run on cancellation instead of signals
	// (docker mode: docker stop with the grace period); the shim's SIGKILL
	// follows if the run has not ended 30 s after the grace period.
	Stop func(ctx context.Context, grace time.Duration)
	// OnLost, when set, is what the shim runs after it stopped the task
	// because no daemon followed it for LostAfter: it reports the task
	// lost and removes what the run left (see ShimMain).
	OnLost *Command
}

// Command is a process to run: its argument list and its whole
// environment.
type Command struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
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
	// Lost is true when the run's supervisor vanished (the task then ran
	// unfollowed; it is gone), or the shim stopped a task no daemon
	// followed for too long.
	Lost bool
}

// Executor runs processes under a shim (see shim.go).
type Executor struct {
	Log *slog.Logger
	// Self is the agent binary that runs the shim (default: this one).
	Self string
	// LostAfter is how long a task runs on without any daemon following
	// it before its shim stops it (0: never).
	LostAfter time.Duration
	// MaxStarting bounds the runs starting at once (see starts.go): 0 is
	// the cores this process may use, at least 2; negative, no bound.
	MaxStarting int
	// StartHold is the longest a run keeps its turn to start
	// (DefaultStartHold when 0).
	StartHold time.Duration

	mu        sync.Mutex
	keepSpare bool   // KeepSpare was called
	spare     *spare // the spare supervisor, nil when none is started
	closed    bool
	starts    *startGate // made on first use (gate)
}

func (e *Executor) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return e.Log
}

// Run starts spec under a shim, copies its combined stdout and stderr to
// out, and waits. The run first waits for its turn to start (starts.go);
// stopped meanwhile (ctx), it ends cancelled with nothing started. An
// error means the process could not be started; once it ran, the outcome
// is in Exit.
func (e *Executor) Run(ctx context.Context, spec Spec, out io.Writer) (Exit, error) {
	if len(spec.Argv) == 0 {
		return Exit{}, errors.New("running task process: empty command")
	}
	if spec.Marker == "" {
		return Exit{}, errors.New("running task process: no run marker")
	}
	dir := spec.RunDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", ".clearml_agent_run_")
		if err != nil {
			return Exit{}, fmt.Errorf("creating the task's run folder: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	asked := time.Now()
	tn, err := e.takeTurn(ctx)
	if err != nil {
		// Stopped while waiting its turn: nothing of it started.
		return Exit{Cancelled: true}, nil
	}
	if waited := time.Since(asked); waited >= 10*time.Millisecond {
		e.log().Debug("the run waited for its turn to start", "run", dir, "waited", waited.Round(time.Millisecond))
	}
	defer tn.give()
	exited, w, err := e.startShim(spec, dir)
	if err != nil {
		return Exit{}, err
	}
	// The next run's spare starts now, beside this run's start: by the
	// next task it has long started.
	e.refill()
	return e.follow(ctx, spec, dir, 0, out, exited, tn, w)
}

// Attach follows a run started by an earlier daemon (the shim kept it
// going), from offset in its output, as Run does.
func (e *Executor) Attach(ctx context.Context, spec Spec, offset int64, out io.Writer) (Exit, error) {
	if err := e.Own(spec.RunDir); err != nil {
		return Exit{}, err
	}
	return e.follow(ctx, spec, spec.RunDir, offset, out, nil, nil, nil)
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

// Usage sums the CPU time and resident memory of a run's live processes:
// its shim and those under it, found from the shim down (proctree.go), or, for a
// run whose folder is not known or whose shim is gone, those that carry
// its marker, found by reading every process's environment.
func Usage(runDir, marker string) (cpu time.Duration, rssBytes int64) {
	pageSize := int64(os.Getpagesize())
	const clkTck = 100 // USER_HZ
	for _, pid := range runProcesses(runDir, marker) {
		f, err := statFields(strconv.Itoa(pid))
		if err != nil || len(f) < 22 {
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

// runProcesses lists a run's live processes (see Usage). The walk down
// reads a few files for a task of a few processes; the environment scan
// reads one file per process of the machine, every 5 s for every task the
// daemon runs when it serves metrics.
func runProcesses(runDir, marker string) []int {
	if runDir != "" {
		if pid, ok := liveShim(runDir); ok {
			return append([]int{pid}, descendants(pid)...)
		}
	}
	return findMarked(marker)
}
