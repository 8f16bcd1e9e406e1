package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/memtrim"
)

// A task runs under a shim: a small process of this binary (`clearml-agent
// task-shim`) in a session of its own, which is the task's parent and a
// child subreaper (PR_SET_CHILD_SUBREAPER), so every process the task
// starts stays its descendant, double-forked daemons that cleared their
// environment included. The shim writes the task's combined output to a
// file and its exit status to another, so the task does not depend on the
// daemon: if the daemon dies, the task runs on, and a daemon started again
// attaches to it (Attach) and follows the output from where it stopped.
//
// The run folder holds:
//
//	output     the task's stdout and stderr, appended by the task itself
//	shim.json  the shim's and the task's pids
//	owner      the pid of the daemon following the run
//	owner.start  its start time, which tells it from a later process
//	           given the same pid
//	exit.json  how the task ended, written (atomically) when it has
//	onlost.json  the command to run when the shim stopped the task because
//	           no daemon followed it (Spec.OnLost), if any
//
// Signals to the shim: SIGTERM/SIGINT/SIGQUIT/SIGHUP are passed to every
// process of the task; SIGUSR1 kills them all.
const (
	OutputFile = "output"
	shimFile   = "shim.json"
	ownerFile  = "owner"
	// ownerStartFile is the owner's start time (procStart), beside the
	// owner file, which stays a bare pid for the shims of earlier versions.
	ownerStartFile = "owner.start"
	exitFile       = "exit.json"
	onLostFile     = "onlost.json"
)

// onLostTimeout bounds the lost-task command (it reports to the server,
// which may be slow or down: it retries within this time).
const onLostTimeout = 2 * time.Minute

// ShimCommand is the hidden sub-command that runs a shim.
const ShimCommand = "task-shim"

type shimInfo struct {
	ShimPID  int   `json:"shim_pid"`
	ChildPID int   `json:"child_pid"`
	Started  int64 `json:"started_ns"`
	// ShimStart is the shim's start time (field 22 of /proc/PID/stat),
	// which tells it from a later process given the same pid.
	ShimStart uint64 `json:"shim_start,omitempty"`
}

// exitInfo is how the task ended.
type exitInfo struct {
	Code   int  `json:"code"`
	Signal int  `json:"signal,omitempty"`
	Lost   bool `json:"lost,omitempty"` // killed because no daemon followed it
	// StartError: the command could not be started at all.
	StartError string `json:"start_error,omitempty"`
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// writeFileAtomic replaces path with data: a reader sees the old content
// or the new, never a part.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// ShimMain is the shim: `task-shim DIR LOST_AFTER_SECONDS -- ARGV...`, or
// `task-shim --spare` (spare.go). It returns the process exit status (0
// once the task's status is recorded). prep, when not nil, may take over
// the start of ARGV (see Preparer).
func ShimMain(args []string, prep Preparer) int {
	if len(args) > 0 && args[0] == spareArg {
		return spareMain(prep)
	}
	if len(args) < 4 || args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: task-shim DIR LOST_AFTER_SECONDS -- COMMAND...")
		return 2
	}
	dir, argv := args[0], args[3:]
	lostAfter, _ := strconv.Atoi(args[1])
	if err := runShim(dir, argv, time.Duration(lostAfter)*time.Second, prep); err != nil {
		fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
		return 1
	}
	return 0
}

// shim is the state of one shim's run.
type shim struct {
	dir       string
	lostAfter time.Duration
	child     int    // the task's process; 0 while the shim sets it up
	start     uint64 // this process's start time (procStart)
	lost      bool
	ownerGone time.Time
}

func runShim(dir string, argv []string, lostAfter time.Duration, preparer Preparer) error {
	// Orphans of the task are re-parented to the shim, not to init.
	if err := prctlSubreaper(); err != nil {
		return fmt.Errorf("becoming a subreaper: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(dir, OutputFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the task output: %w", err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
	s := &shim{dir: dir, lostAfter: lostAfter}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLEARML_AGENT_SHIM_") {
			env = append(env, kv)
		}
	}
	var prepare Prepare
	if preparer != nil {
		prepare, _ = preparer(argv)
	}
	var exited chan syscall.WaitStatus
	started := func(pid int) error {
		s.child = pid
		exited = make(chan syscall.WaitStatus, 1)
		go func() { exited <- ReapUntil(pid) }()
		return s.record()
	}
	// In process, the setup runs while the shim answers signals (they stop
	// it); else the command starts at once.
	var prepared chan prepResult
	cancelPrep := func() {}
	// settle fires once the task's start is over: the shim then gives
	// back the memory and the pages of the binary its start and the setup
	// used (memtrim.Settle).
	var settle <-chan time.Time
	if prepare != nil {
		if err := s.record(); err != nil {
			out.Close()
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cancelPrep = cancel
		prepared = make(chan prepResult, 1)
		go func() {
			defer func() {
				// A panic ends the run as it would have ended the command:
				// exit status 2, the stack in the task's output.
				if v := recover(); v != nil {
					fmt.Fprintf(out, "panic: %v\n\n%s", v, debug.Stack())
					prepared <- prepResult{err: exitCodeError(2)}
				}
			}()
			l, err := prepare(ctx, out)
			prepared <- prepResult{l, err}
		}()
	} else {
		path := argv[0]
		if !strings.Contains(path, "/") {
			if p, err := lookPath(path, env); err == nil {
				path = p
			}
		}
		pid, err := startTask(Launch{Path: path, Argv: argv, Env: env}, out)
		out.Close()
		if err != nil {
			return s.finish(startFailed(argv[0], err))
		}
		if err := started(pid); err != nil {
			return err
		}
		settle = time.After(memtrim.Settle)
	}
	var stopped syscall.Signal // a stop signal the setup got
	watch := time.NewTicker(2 * time.Second)
	defer watch.Stop()
	for {
		select {
		case r := <-prepared:
			prepared = nil
			cancelPrep()
			if r.err == nil && stopped != 0 {
				fmt.Fprintf(out, "clearml-agent: stopped (%v) before the task started\n", stopped)
				r.err = exitCodeError(128 + int(stopped))
			}
			if r.err != nil {
				out.Close()
				killTree(os.Getpid(), 2*time.Second)
				info := exitInfo{Code: exitCode(r.err)}
				if stopped == syscall.SIGKILL {
					info.Code, info.Signal = -int(syscall.SIGKILL), int(syscall.SIGKILL)
				}
				return s.finish(info)
			}
			pid, err := startTask(r.launch, out)
			out.Close()
			if err != nil {
				return s.finish(startFailed(r.launch.Path, err))
			}
			if err := started(pid); err != nil {
				return err
			}
			// What the setup held is not needed while the task runs: it
			// goes back once the task's start (and, in services mode, the
			// other tasks' starts) are over, not on their way.
			settle = time.After(memtrim.Settle)
		case <-settle:
			settle = nil
			if prepare != nil {
				// What the setup held (a forced collection; without a
				// setup there is nothing to give back, and the collection
				// itself would cost memory).
				debug.FreeOSMemory()
			}
			if _, err := memtrim.BinaryPages(); err != nil {
				fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
			}
		case ws := <-exited:
			killTree(os.Getpid(), 2*time.Second)
			info := exitInfo{Code: ws.ExitStatus()}
			if ws.Signaled() {
				info.Code, info.Signal = -int(ws.Signal()), int(ws.Signal())
			}
			return s.finish(info)
		case sig := <-sigs:
			ss := sig.(syscall.Signal)
			if ss == syscall.SIGUSR1 {
				ss = syscall.SIGKILL
			}
			if s.child == 0 {
				// The setup in this process: stop it and what it started.
				cancelPrep()
				if stopped != syscall.SIGKILL {
					stopped = ss
				}
			} else if ss != syscall.SIGKILL {
				syscall.Kill(-s.child, ss)
			}
			signalTree(os.Getpid(), ss)
		case <-watch.C:
			if s.ownerLost() {
				// No daemon follows the task any more: stop it rather than
				// leave it running unsupervised.
				s.lost = true
				cancelPrep()
				fmt.Fprintf(appendOutput(dir), "clearml-agent: no agent followed this task for %v: stopping it\n", lostAfter)
				signalTree(os.Getpid(), syscall.SIGTERM)
				go func() { time.Sleep(10 * time.Second); signalTree(os.Getpid(), syscall.SIGKILL) }()
			}
		}
	}
}

// record writes shim.json: the shim's pid, and the task's once it runs.
func (s *shim) record() error {
	if s.start == 0 {
		s.start, _ = procStart(os.Getpid())
	}
	return writeJSON(filepath.Join(s.dir, shimFile), shimInfo{ShimPID: os.Getpid(), ChildPID: s.child, Started: time.Now().UnixNano(),
		ShimStart: s.start})
}

// ownerLost reports, once, that no daemon followed the run for lostAfter.
func (s *shim) ownerLost() bool {
	if s.lostAfter <= 0 || ownerAlive(s.dir) {
		s.ownerGone = time.Time{}
		return false
	}
	if s.ownerGone.IsZero() {
		s.ownerGone = time.Now()
	}
	return !s.lost && time.Since(s.ownerGone) >= s.lostAfter
}

// finish records how the task ended and, for a task stopped because no
// daemon followed it, runs the lost-task command.
func (s *shim) finish(info exitInfo) error {
	info.Lost = s.lost
	if err := writeJSON(filepath.Join(s.dir, exitFile), info); err != nil || !s.lost {
		return err
	}
	runOnLost(s.dir)
	return nil
}

// startFailed is how a task ended that could not be started.
func startFailed(name string, err error) exitInfo {
	return exitInfo{Code: 127, StartError: fmt.Sprintf("starting %s: %v", name, err)}
}

// startTask starts the task's process, in a process group of its own,
// with out as its stdout and stderr.
func startTask(l Launch, out *os.File) (int, error) {
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	proc, err := os.StartProcess(l.Path, l.Argv, &os.ProcAttr{Dir: l.Dir, Env: l.Env, Files: []*os.File{devnull, out, out},
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		return 0, err
	}
	return proc.Pid, nil
}

// runOnLost runs the run's lost-task command, if it has one, and waits for
// it (at most onLostTimeout). Its output goes to the shim's log.
func runOnLost(dir string) {
	var c Command
	if err := readJSON(filepath.Join(dir, onLostFile), &c); err != nil || len(c.Argv) == 0 {
		return
	}
	proc, err := os.StartProcess(c.Argv[0], c.Argv, &os.ProcAttr{Env: c.Env, Files: []*os.File{nil, os.Stdout, os.Stderr}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "task-shim: reporting the lost task: %v\n", err)
		return
	}
	done := make(chan struct{})
	go func() { proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(onLostTimeout):
		proc.Kill()
		<-done
	}
}

func appendOutput(dir string) *os.File {
	f, err := os.OpenFile(filepath.Join(dir, OutputFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		f, _ = os.Open(os.DevNull)
	}
	return f
}

func prctlSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// ReapUntil reaps every child (orphans re-parented to a subreaper or PID
// 1 included) until pid has exited, and returns pid's status.
func ReapUntil(pid int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return syscall.WaitStatus(1 << 8) // no such child: report exit status 1
		}
		if got == pid {
			return ws
		}
	}
}

// ownerAlive reports whether the daemon recorded in the owner file runs:
// the process of that pid, started when owner.start says (a pid is reused
// within seconds on a busy machine whose pids wrap at 32,768). An owner
// file without its start time (an earlier daemon's) is checked by pid.
func ownerAlive(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return false
	}
	if raw, err := os.ReadFile(filepath.Join(dir, ownerStartFile)); err == nil {
		want, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		start, ok := procStart(pid)
		return err == nil && ok && start == want
	}
	return syscall.Kill(pid, 0) == nil
}

func lookPath(name string, env []string) (string, error) {
	pathVar := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}
