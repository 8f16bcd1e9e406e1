package executor

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Turns to start. A run's start is the costliest part of its life for the
// machine: the supervisor's binary starts (on a virtual machine, a
// thousand page faults and the initialisation of every package linked
// in), the setup probes the interpreter and writes the task's files, and
// the task's interpreter starts. Fifty runs started at once (services
// mode taking a burst of tasks) are some hundred processes the kernel
// shares the cores among fairly, the daemon and the server among them:
// the daemon's pops and status calls, the server's answers to everyone,
// and every run's start all took as long as the slowest (on 2 cores, 50
// tasks: the last in_progress 2.2 to 2.9 s after the first enqueue, the
// median task's first line after 4.3 to 5.1 s; taking turns, 0.55 to
// 0.97 s and 3.4 s, the last first line unchanged: the starts need the
// same CPU in either order). So at most MaxStarting runs start at once;
// the others wait their turn, in the order they came.
//
// A run gives its turn back once its process runs (the shim recorded its
// child), once it ended, or StartHold after it took the turn: a setup
// that takes longer waits on the network or the disk (pip, git, a docker
// pull), not on the cores, and must not hold the next task back.

// DefaultStartHold is how long a run keeps its turn at most.
const DefaultStartHold = time.Second

// startGate lets at most cap(turns) runs start at once, first come first
// served (a channel's blocked senders are served in order).
type startGate struct {
	turns   chan struct{}
	waiting atomic.Int32 // runs waiting for a turn (tests watch it)
}

func newStartGate(n int) *startGate {
	return &startGate{turns: make(chan struct{}, n)}
}

// enter waits for a turn and returns the function that gives it back
// (once; later calls do nothing), or ctx's error if ctx ends first. A
// nil gate admits everyone at once.
func (g *startGate) enter(ctx context.Context) (leave func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	select {
	case g.turns <- struct{}{}:
	default:
		g.waiting.Add(1)
		defer g.waiting.Add(-1)
		select {
		case g.turns <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() { once.Do(func() { <-g.turns }) }, nil
}

// gate returns e's start gate, made on first use: MaxStarting turns, or
// when that is 0 the cores this process may use (at least 2); nil (no
// bound) when MaxStarting is negative.
func (e *Executor) gate() *startGate {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.starts == nil && e.MaxStarting >= 0 {
		n := e.MaxStarting
		if n == 0 {
			n = max(2, runtime.GOMAXPROCS(0))
		}
		e.starts = newStartGate(n)
	}
	return e.starts
}

// turn is a run's turn to start, held from before its shim starts until
// its task process runs (see follow).
type turn struct {
	leave func()
	hold  *time.Timer // fires StartHold after the turn was taken
}

// takeTurn waits for a turn to start a run.
func (e *Executor) takeTurn(ctx context.Context) (*turn, error) {
	g := e.gate()
	leave, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	hold := e.StartHold
	if hold <= 0 {
		hold = DefaultStartHold
	}
	return &turn{leave: leave, hold: time.NewTimer(hold)}, nil
}

// give gives the turn back (once; a nil turn has none).
func (t *turn) give() {
	if t == nil {
		return
	}
	t.hold.Stop()
	t.leave()
}

// childStarted reports whether the shim of the run in dir has recorded
// its task process.
func childStarted(dir string) bool {
	var si shimInfo
	return readJSON(filepath.Join(dir, shimFile), &si) == nil && si.ChildPID != 0
}
