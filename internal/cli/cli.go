// Package cli implements the clearml-agent command line: one file per
// sub-command, each parsing its own flags and wiring the internal packages
// together.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/goclearml/agent/internal/version"
)

// UsageError is a command-line mistake; main prints it with a hint and
// exits with status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	err := run(args, stdout, stderr)
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "clearml-agent: %s\nRun 'clearml-agent --help' for usage.\n", ue.Msg)
		return 2
	case errors.Is(err, errHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "clearml-agent: %v\n", err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
}

var errHelp = errors.New("help shown")

const usage = `clearml-agent: run ClearML tasks from queues (a Go reimplementation of clearml-agent)

Usage:
  clearml-agent server [--listen ADDR] [--data-dir DIR] [--db postgres://...]
  clearml-agent version

Run 'clearml-agent COMMAND --help' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &UsageError{Msg: "no command given"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return errHelp
	case "version", "--version":
		fmt.Fprintf(stdout, "clearml-agent %s (Go reimplementation; ClearML API %s)\n", version.Version, version.APIVersion)
		return nil
	case "server":
		return runServer(rest, stdout, stderr)
	default:
		return &UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
	}
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// newLogger builds the operator log at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToUpper(level) {
	case "", "INFO":
		l = slog.LevelInfo
	case "DEBUG":
		l = slog.LevelDebug
	case "WARN", "WARNING":
		l = slog.LevelWarn
	case "ERROR", "CRITICAL", "FATAL":
		l = slog.LevelError
	default:
		return nil, &UsageError{Msg: fmt.Sprintf("invalid log level %q (use DEBUG, INFO, WARNING, ERROR or CRITICAL)", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
