package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// self is the agent binary the shims run.
func (e *Executor) self() (string, error) {
	if e.Self != "" {
		return e.Self, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the agent binary for the task shim: %w", err)
	}
	return self, nil
}

// startShim starts the shim for spec in dir (or hands the run to the spare
// one, when e keeps one; see spare.go), in a session of its own so that
// nothing aimed at the daemon (a terminal's Ctrl-C, the daemon's death)
// reaches it, and waits until it has recorded itself. The returned channel
// is closed once the shim has exited and is reaped. The returned watch of
// the run folder (nil when none could be had) is the one the wait used,
// for follow to go on with; the caller closes it.
func (e *Executor) startShim(spec Spec, dir string) (exited <-chan struct{}, w *watcher, err error) {
	self, err := e.self()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the task's run folder: %w", err)
	}
	// Watched from before anything of the run starts. Without a watch the
	// wait reads the folder instead, and follow tries again (and says why
	// it cannot follow the output).
	w, _ = newWatcher(dir)
	defer func() {
		if err != nil && w != nil {
			w.close()
			w = nil
		}
	}()
	for _, f := range []string{exitFile, shimFile, OutputFile, onLostFile} {
		os.Remove(filepath.Join(dir, f))
	}
	if spec.OnLost != nil {
		if err := writeJSON(filepath.Join(dir, onLostFile), spec.OnLost); err != nil {
			return nil, nil, fmt.Errorf("recording the run's lost-task command: %w", err)
		}
	}
	if err := e.Own(dir); err != nil {
		return nil, nil, err
	}
	if spec.Dir != "" {
		if st, err := os.Stat(spec.Dir); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("entering the task's working folder %s: %w", spec.Dir, cmp.Or[error](err, syscall.ENOTDIR))
		}
	}
	lostAfter := strconv.Itoa(int(e.LostAfter / time.Second))
	argv := append([]string{self, ShimCommand, dir, lostAfter, "--"}, spec.Argv...)
	markerVar := RunMarkerEnv + "=" + spec.Marker
	env := append(append([]string{}, spec.Env...), markerVar)
	a := assignment{Dir: dir, LostAfter: int(e.LostAfter / time.Second), Argv: spec.Argv, Env: env, Cwd: spec.Dir, Title: argv}
	if exited := e.handToSpare(a, markerVar); exited != nil {
		err := waitRecorded(dir, exited, w)
		if !errors.Is(err, errShimExited) {
			return exited, w, err
		}
		// Nothing of the run started: a supervisor of its own runs it.
		e.log().Warn("the spare task supervisor exited before taking the run; starting one", "run", dir)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the shim log: %w", err)
	}
	proc, err := os.StartProcess(self, argv, &os.ProcAttr{Dir: spec.Dir, Env: env, Files: []*os.File{nil, logf, logf},
		Sys: &syscall.SysProcAttr{Setsid: true}})
	logf.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the task shim: %w", err)
	}
	// The shim runs on its own (it outlives this process if need be);
	// while we live, it is reaped as soon as it exits.
	done := make(chan struct{})
	go func() {
		proc.Wait()
		close(done)
	}()
	return done, w, waitRecorded(dir, done, w)
}

// waitRecorded waits until the shim of the run in dir has recorded itself
// (shim.json) or the run's end (exit.json: its command could not start).
// exited is closed once the shim has exited. With w, the run folder's
// watch, the wait ends as the file appears; without one (the user's
// inotify instances used up), the folder is read every 2 ms instead.
func waitRecorded(dir string, exited <-chan struct{}, w *watcher) error {
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	var changed <-chan struct{}
	every := 2 * time.Millisecond
	if w != nil {
		// A safety net only, as in follow: the watch reports each change.
		changed, every = w.events, 250*time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	recorded := func() bool {
		var si shimInfo
		if readJSON(filepath.Join(dir, shimFile), &si) == nil {
			return true
		}
		_, err := os.Stat(filepath.Join(dir, exitFile))
		return err == nil
	}
	for {
		if recorded() {
			return nil
		}
		select {
		case <-exited:
			if recorded() {
				return nil // it recorded itself, then ended: follow reads how
			}
			return errShimExited
		case <-deadline.C:
			return errors.New("the task shim did not start within 30 s")
		case <-changed:
		case <-tick.C:
		}
	}
}

// errShimExited: a shim exited before recording itself.
var errShimExited = errors.New("the task shim exited at its start (see shim.log in the run folder)")

// Own records this process as the one following the run in dir: its pid
// and its start time (written first: a shim that reads the two while a
// new owner writes them sees a mismatch for one check, never a wrong
// match).
func (e *Executor) Own(dir string) error {
	start, ok := procStart(os.Getpid())
	if !ok {
		return errors.New("recording the run's owner: no start time for this process in /proc")
	}
	for _, f := range []struct{ name, value string }{
		{ownerStartFile, strconv.FormatUint(start, 10)},
		{ownerFile, strconv.Itoa(os.Getpid())},
	} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), []byte(f.value)); err != nil {
			return fmt.Errorf("recording the run's owner: %w", err)
		}
	}
	return nil
}

// ShimAlive reports whether the shim of the run in dir still runs.
func ShimAlive(dir string) bool {
	_, ok := liveShim(dir)
	return ok
}

// liveShim returns the pid of the run's shim, if it still runs.
func liveShim(dir string) (int, bool) {
	var si shimInfo
	if err := readJSON(filepath.Join(dir, shimFile), &si); err != nil || si.ShimPID <= 0 {
		return 0, false
	}
	if si.ShimStart != 0 {
		// The pid could have been reused by another process: a shim is
		// known by its start time.
		start, ok := procStart(si.ShimPID)
		return si.ShimPID, ok && start == si.ShimStart
	}
	// A shim of an earlier version: known by its command line.
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", si.ShimPID))
	if err != nil {
		return 0, false
	}
	return si.ShimPID, strings.Contains(string(cmd), ShimCommand+"\x00"+dir+"\x00")
}

// statFields returns the fields of /proc/PID/stat (pid: a number or
// "self") from field 3, the state, on: field N is at index N-3. The
// command's name before them, in parentheses, may hold spaces.
func statFields(pid string) ([]string, error) {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(raw)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), nil
}

// procStart returns a live process's start time (clock ticks after boot);
// false for a process that is gone or a zombie.
func procStart(pid int) (uint64, bool) {
	f, err := statFields(strconv.Itoa(pid))
	// Field 22 is the start time.
	if err != nil || len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// Ended reports whether the run in dir has recorded its exit.
func Ended(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, exitFile))
	return err == nil
}

func readExit(dir string) (Exit, bool, error) {
	var info exitInfo
	if err := readJSON(filepath.Join(dir, exitFile), &info); err != nil {
		return Exit{}, false, nil
	}
	if info.StartError != "" {
		return Exit{}, true, errors.New(info.StartError)
	}
	return Exit{Code: info.Code, Signal: syscall.Signal(info.Signal), Lost: info.Lost}, true, nil
}

func signalShim(dir string, sig syscall.Signal) {
	if pid, ok := liveShim(dir); ok {
		syscall.Kill(pid, sig)
	}
}

// follow copies the run's output to out, from offset, until the run has
// ended and its output is read. Cancelling ctx stops the run: spec.Stop
// when set (docker stop), else SIGTERM to every process of the task, and
// after the grace period SIGKILL.
// exited, when not nil, is closed once the shim has exited (a shim this
// process started).
//
// tn is the run's turn to start (nil when it has none): it is given back
// once the task's process runs, or the turn's hold is over.
//
// w is the run folder's watch, which follow closes; nil: follow makes its
// own.
func (e *Executor) follow(ctx context.Context, spec Spec, dir string, offset int64, out io.Writer, exited <-chan struct{}, tn *turn, w *watcher) (Exit, error) {
	grace := spec.GracePeriod
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if w == nil {
		var err error
		if w, err = newWatcher(dir); err != nil {
			return Exit{}, err
		}
	}
	defer w.close()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 256<<10)
	read := func() (bool, error) {
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(dir, OutputFile)); err != nil {
				if os.IsNotExist(err) {
					return false, nil
				}
				return false, err
			}
		}
		got := false
		for {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				got = true
				offset += int64(n)
				if _, werr := out.Write(buf[:n]); werr != nil {
					return got, fmt.Errorf("writing the task output: %w", werr)
				}
			}
			if err != nil || n < len(buf) {
				if err != nil && !errors.Is(err, io.EOF) {
					return got, err
				}
				return got, nil
			}
		}
	}
	var exit Exit
	cancelled := ctx.Done()
	var killAt <-chan time.Time
	var holdOver <-chan time.Time
	if tn != nil {
		holdOver = tn.hold.C
	}
	endTurn := func() {
		tn.give()
		tn, holdOver = nil, nil
	}
	lastAlive := time.Now()
	for {
		if tn != nil && childStarted(dir) {
			endTurn()
		}
		if _, err := read(); err != nil {
			return Exit{}, err
		}
		if x, ok, err := readExit(dir); ok {
			if err != nil {
				return Exit{}, err
			}
			// Everything the task wrote is in the file now.
			if _, err := read(); err != nil {
				return Exit{}, err
			}
			// The shim exits right after writing the status: when Run
			// returns, nothing of the run is left.
			if exited != nil {
				t := time.NewTimer(2 * time.Second)
				select {
				case <-exited:
				case <-t.C:
				}
				t.Stop()
			} else {
				for wait := time.Now().Add(2 * time.Second); ShimAlive(dir) && time.Now().Before(wait); {
					time.Sleep(2 * time.Millisecond)
				}
			}
			x.Cancelled = exit.Cancelled
			return x, nil
		}
		if time.Since(lastAlive) > time.Second {
			if !ShimAlive(dir) {
				read()
				if x, ok, err := readExit(dir); ok {
					x.Cancelled = exit.Cancelled
					return x, err
				}
				return Exit{Code: -int(syscall.SIGKILL), Signal: syscall.SIGKILL, Cancelled: exit.Cancelled, Lost: true}, nil
			}
			lastAlive = time.Now()
		}
		select {
		case <-w.events:
		case <-time.After(250 * time.Millisecond):
		case <-holdOver:
			endTurn()
		case <-cancelled:
			cancelled, exit.Cancelled = nil, true
			e.log().Info("stopping task processes", "run", dir, "grace", grace)
			if spec.Stop != nil {
				go spec.Stop(context.WithoutCancel(ctx), grace)
				killAt = time.After(grace + 30*time.Second)
			} else {
				signalShim(dir, syscall.SIGTERM)
				killAt = time.After(grace)
			}
		case <-killAt:
			killAt = nil
			e.log().Warn("task processes did not stop within the grace period: killing them", "run", dir)
			signalShim(dir, syscall.SIGUSR1)
		}
	}
}

// watcher wakes follow when the run folder changes (inotify).
type watcher struct {
	fd, wd  int
	events  chan struct{}
	done    chan struct{}
	closing atomic.Bool
}

func newWatcher(dir string) (*watcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watching the task output: %w", err)
	}
	wd, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MODIFY|syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE)
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("watching the task output: %w", err)
	}
	w := &watcher{fd: fd, wd: wd, events: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		buf := make([]byte, 4096)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil && errors.Is(err, syscall.EINTR) {
				continue
			}
			if n <= 0 || err != nil || w.closing.Load() {
				return
			}
			select {
			case w.events <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

func (w *watcher) close() {
	// Removing the watch wakes the blocked read with IN_IGNORED, and the
	// reader sees it is closing.
	w.closing.Store(true)
	syscall.InotifyRmWatch(w.fd, uint32(w.wd))
	select {
	case <-w.done:
	case <-time.After(time.Second):
	}
	syscall.Close(w.fd)
}

// StopRun kills every process of the run in dir (a run no daemon takes
// back).
func StopRun(dir string) {
	signalShim(dir, syscall.SIGUSR1)
}
