package executor

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/memtrim"
)

// Spare supervisors. Most of a supervisor's start is the start of the
// binary: the Go runtime and the initialisation of every package linked
// in, about a thousand page faults, 30 to 40 ms on a virtual machine where
// a fault costs 30 µs. A daemon (KeepSpare) keeps one supervisor started
// ahead of its next run: `task-shim --spare`, which does nothing but wait
// for its run on its standard input. A run takes it and hands it the run
// over a pipe (its folder, command, environment and working folder); the
// spare then takes the run's environment, folder, output and process
// title (proctitle.go) and is the run's supervisor from there on, exactly
// as one started for the run. The next spare starts as soon as a run has
// taken one, beside that run's start and off the next one's path (a
// burst of tasks in services mode each find one, possibly still
// starting). A run that finds no live spare starts its own.
//
// A spare that waits longer than memtrim.Settle gives back the pages of
// the binary its start touched, and again now and then while it waits.
// It exits when the pipe closes without a run: when the daemon lets it
// go (Close) or dies.

// spareArg is the spare's first argument; spareTitle is the size of the
// argument after it, the room its command line has for the run's.
const (
	spareArg   = "--spare"
	spareTitle = 2048
)

// spareMarkerRoom is the room in the spare's environment for its run's
// marker (a daemon's markers are a task id and a time: about 52 bytes).
const spareMarkerRoom = 160

// maxAssignment bounds what a spare reads for its run.
const maxAssignment = 16 << 20

// assignment is a run handed to a spare.
type assignment struct {
	Dir       string   `json:"dir"`
	LostAfter int      `json:"lost_after_s"`
	Argv      []string `json:"argv"`
	Env       []string `json:"env"`
	Cwd       string   `json:"cwd,omitempty"`
	// Title is the command line a supervisor started for the run has.
	Title []string `json:"title"`
}

// spare is a started spare supervisor, seen from the daemon.
type spare struct {
	proc *os.Process
	w    *os.File      // the write end of its standard input
	done chan struct{} // closed once it has exited and is reaped
}

func (sp *spare) alive() bool {
	select {
	case <-sp.done:
		return false
	default:
		return true
	}
}

// assign hands the spare its run and closes the pipe.
func (sp *spare) assign(a assignment) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	defer sp.w.Close()
	sp.w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := sp.w.Write(data); err != nil {
		return fmt.Errorf("handing the run to the spare supervisor: %w", err)
	}
	return nil
}

// release lets an unused spare go: it exits once its input closes (it is
// killed if it has not within 5 s).
func (sp *spare) release() {
	sp.w.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-sp.done:
	case <-t.C:
		sp.proc.Kill()
		<-sp.done
	}
}

// KeepSpare makes e keep one supervisor started ahead of the next run
// (see above), from now until Close.
func (e *Executor) KeepSpare() {
	e.mu.Lock()
	e.keepSpare = true
	e.mu.Unlock()
	e.refill()
}

// Close lets the spare supervisor go and waits for it to exit. Runs in
// progress are not affected.
func (e *Executor) Close() {
	e.mu.Lock()
	e.closed = true
	sp := e.spare
	e.spare = nil
	e.mu.Unlock()
	if sp != nil {
		sp.release()
	}
}

// refill starts a spare when e keeps one and has none alive.
func (e *Executor) refill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.keepSpare || e.closed || (e.spare != nil && e.spare.alive()) {
		return
	}
	if e.spare != nil {
		e.spare.w.Close() // it died waiting
		e.spare = nil
	}
	sp, err := e.startSpare()
	if err != nil {
		e.log().Warn("starting a spare task supervisor; the next task starts its own", "err", err)
		return
	}
	e.spare = sp
}

// handToSpare hands the run to the spare, if there is one alive and it
// takes it; it returns the channel closed once the spare has exited, or
// nil when the run needs a supervisor of its own. markerVar is the run's
// marker variable, which must fit the spare's environment.
func (e *Executor) handToSpare(a assignment, markerVar string) <-chan struct{} {
	sp := e.takeSpare()
	switch {
	case sp == nil:
		return nil
	case len(markerVar) > len(RunMarkerEnv)+1+spareMarkerRoom:
		sp.release()
		return nil
	}
	if err := sp.assign(a); err != nil {
		e.log().Warn("the spare task supervisor did not take the run; starting one", "err", err)
		sp.release()
		return nil
	}
	return sp.done
}

// takeSpare returns the spare for a run, or nil when there is none alive.
func (e *Executor) takeSpare() *spare {
	e.mu.Lock()
	defer e.mu.Unlock()
	sp := e.spare
	e.spare = nil
	if sp != nil && !sp.alive() {
		sp.w.Close() // it died waiting
		return nil
	}
	return sp
}

func (e *Executor) startSpare() (*spare, error) {
	self, err := e.self()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer devnull.Close()
	argv := []string{self, ShimCommand, spareArg, strings.Repeat(" ", spareTitle)}
	env := []string{RunMarkerEnv + "=" + strings.Repeat("-", spareMarkerRoom)}
	proc, err := os.StartProcess(self, argv, &os.ProcAttr{Env: env, Files: []*os.File{r, devnull, devnull},
		Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("starting a spare task supervisor: %w", err)
	}
	sp := &spare{proc: proc, w: w, done: make(chan struct{})}
	go func() {
		proc.Wait()
		close(sp.done)
	}()
	return sp, nil
}

// maxRetrim bounds the interval at which a waiting spare gives back the
// binary's pages again.
const maxRetrim = 5 * time.Minute

// spareMain is a spare supervisor: it waits for its run on its standard
// input, then supervises it (runShim). It returns its exit status.
func spareMain(prep Preparer) int {
	type input struct {
		data []byte
		err  error
	}
	got := make(chan input, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(os.Stdin, maxAssignment))
		got <- input{data, err}
	}()
	// The pages are given back after Settle, then again at doubling
	// intervals (up to maxRetrim) while the spare waits: what the runtime
	// maps back meanwhile (a collection's code, say) goes too.
	wait := memtrim.Settle
	settle := time.NewTimer(wait)
	defer settle.Stop()
	var in input
	for waiting := true; waiting; {
		select {
		case in = <-got:
			waiting = false
		case <-settle.C:
			memtrim.BinaryPages()
			wait = min(2*wait, maxRetrim)
			settle.Reset(wait)
		}
	}
	if len(in.data) == 0 {
		return 0 // let go without a run
	}
	var a assignment
	if err := json.Unmarshal(in.data, &a); err != nil || a.Dir == "" || len(a.Argv) == 0 {
		fmt.Fprintf(os.Stderr, "task-shim: a spare got no run it can use (%d bytes)\n", len(in.data))
		return 2
	}
	if err := a.takeOn(); err != nil {
		fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
		s := &shim{dir: a.Dir}
		if err := s.finish(exitInfo{Code: 127, StartError: err.Error()}); err != nil {
			fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
		}
		return 1
	}
	if err := runShim(a.Dir, a.Argv, time.Duration(a.LostAfter)*time.Second, prep); err != nil {
		fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
		return 1
	}
	return 0
}

// takeOn makes this process what a supervisor started for the run would
// be: its output goes to the run's shim.log, its input is /dev/null, its
// environment and working folder are the run's, and so are its command
// line and marker as /proc shows them.
func (a *assignment) takeOn() error {
	logf, err := os.OpenFile(filepath.Join(a.Dir, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the shim log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	for _, d := range []struct {
		from *os.File
		to   int
	}{{devnull, 0}, {logf, 1}, {logf, 2}} {
		if err := syscall.Dup3(int(d.from.Fd()), d.to, 0); err != nil {
			return fmt.Errorf("redirecting the spare's output: %w", err)
		}
	}
	os.Clearenv()
	marker := ""
	for _, kv := range a.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		os.Setenv(k, v)
		if k == RunMarkerEnv {
			marker = kv
		}
	}
	if err := setProcTitle(a.Title, []string{marker}); err != nil {
		// Only what ps shows: the run's shim.json names this process.
		fmt.Fprintf(os.Stderr, "task-shim: %v\n", err)
	}
	if a.Cwd != "" {
		if err := os.Chdir(a.Cwd); err != nil {
			return fmt.Errorf("starting the task shim: %w", err)
		}
	}
	return nil
}
