package executor

import (
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

// startShim starts the shim for spec in dir, in a session of its own so
// that nothing aimed at the daemon (a terminal's Ctrl-C, the daemon's
// death) reaches it.
func (e *Executor) startShim(spec Spec, dir string) error {
	self := e.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the agent binary for the task shim: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the task's run folder: %w", err)
	}
	for _, f := range []string{exitFile, shimFile, OutputFile, onLostFile} {
		os.Remove(filepath.Join(dir, f))
	}
	if spec.OnLost != nil {
		if err := writeJSON(filepath.Join(dir, onLostFile), spec.OnLost); err != nil {
			return fmt.Errorf("recording the run's lost-task command: %w", err)
		}
	}
	if err := e.Own(dir); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the shim log: %w", err)
	}
	defer logf.Close()
	argv := append([]string{self, ShimCommand, dir, strconv.Itoa(int(e.LostAfter / time.Second)), "--"}, spec.Argv...)
	env := append(append([]string{}, spec.Env...), RunMarkerEnv+"="+spec.Marker)
	proc, err := os.StartProcess(self, argv, &os.ProcAttr{Dir: spec.Dir, Env: env, Files: []*os.File{nil, logf, logf},
		Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		return fmt.Errorf("starting the task shim: %w", err)
	}
	// The shim is not our child to wait for once it runs on its own; reap
	// it so that it does not linger as a zombie while we live.
	go proc.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var si shimInfo
		if readJSON(filepath.Join(dir, shimFile), &si) == nil {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dir, exitFile)); err == nil {
			return nil // could not start the command; exit.json says so
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("the task shim did not start within 30 s")
}

// Own records this process as the one following the run in dir.
func (e *Executor) Own(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fmt.Errorf("recording the run's owner: %w", err)
	}
	return nil
}

// ShimAlive reports whether the shim of the run in dir still runs.
func ShimAlive(dir string) bool {
	var si shimInfo
	if err := readJSON(filepath.Join(dir, shimFile), &si); err != nil || si.ShimPID <= 0 {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", si.ShimPID))
	if err != nil {
		return false
	}
	// The pid could have been reused by another process.
	return strings.Contains(string(cmd), ShimCommand+"\x00"+dir+"\x00")
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
	var si shimInfo
	if readJSON(filepath.Join(dir, shimFile), &si) == nil && si.ShimPID > 0 && ShimAlive(dir) {
		syscall.Kill(si.ShimPID, sig)
	}
}

// follow copies the run's output to out, from offset, until the run has
// ended and its output is read. Cancelling ctx stops the run: spec.Stop
// when set (docker stop), else SIGTERM to every process of the task, and
// after the grace period SIGKILL.
func (e *Executor) follow(ctx context.Context, spec Spec, dir string, offset int64, out io.Writer) (Exit, error) {
	grace := spec.GracePeriod
	if grace <= 0 {
		grace = 10 * time.Second
	}
	w, err := newWatcher(dir)
	if err != nil {
		return Exit{}, err
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
	lastAlive := time.Now()
	for {
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
			for wait := time.Now().Add(2 * time.Second); ShimAlive(dir) && time.Now().Before(wait); {
				time.Sleep(2 * time.Millisecond)
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
