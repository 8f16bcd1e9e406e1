package executor

import (
	"context"
	"errors"
	"os"
	"strconv"
)

// Launch is a process for the shim to start.
type Launch struct {
	Path string   // the program (a path, not looked up)
	Argv []string // its arguments, Argv[0] included
	Env  []string // its whole environment
	Dir  string   // its working folder ("" is the shim's)
}

// Prepare runs, inside the shim, a command of this binary that would end
// by replacing itself with the task's process (`execute`: it marks the
// task started, installs what the task needs, and execs the task), and
// returns that process instead, which the shim then starts as its child:
// a task costs one start of the binary, not two. It writes to out what the
// command would have written. ctx is cancelled when the shim is told to
// stop; an error ends the run with the error's ExitCode() (1 if it has
// none), as the command's exit status would have.
type Prepare func(ctx context.Context, out *os.File) (Launch, error)

// Preparer returns the Prepare that runs argv in the shim, or false when
// the shim is to start argv as a process of its own.
type Preparer func(argv []string) (Prepare, bool)

type prepResult struct {
	launch Launch
	err    error
}

// exitCodeError is an exit status as an error.
type exitCodeError int

func (e exitCodeError) Error() string { return "exit status " + strconv.Itoa(int(e)) }
func (e exitCodeError) ExitCode() int { return int(e) }

// exitCode is the exit status an error from Prepare stands for.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
