// Package cli implements the clearml-agent command line: one file per
// sub-command, each parsing its own flags and wiring the internal packages
// together.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	cliargs "github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/containerinit"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/logging"
	"github.com/goclearml/agent/internal/version"
)

// UsageError is a command-line mistake; main prints it with a hint and
// exits with status 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO is Main with its standard input given (init reads answers).
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return reportError(run(args, stdin, stdout, stderr), stderr)
}

// reportError says on stderr why a command failed, and returns its exit
// status.
func reportError(err error, stderr io.Writer) int {
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
		if !errors.Is(err, errSilent) {
			fmt.Fprintf(stderr, "clearml-agent: %v\n", err)
		}
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
}

var errHelp = errors.New("help shown")

// errSilent ends a command with an exit status and no message (the
// command already said why).
var errSilent = errors.New("exit status already reported")

const usage = `clearml-agent: run ClearML tasks from queues (a Go reimplementation of clearml-agent)

Usage:
  clearml-agent [--config-file FILE] [--debug] [--log-format human|logfmt|json] daemon [--queue Q [Q ...]] [--foreground] [flags]
  clearml-agent [--config-file FILE] execute --id TASK_ID
  clearml-agent [--config-file FILE] submit --script FILE [--project P] [--name N] [--queue Q] [flags]
  clearml-agent [--config-file FILE] tasks list|show|logs|abort|enqueue|reset [TASK_ID] [flags]
  clearml-agent [--config-file FILE] queues list [--json]
  clearml-agent [--config-file FILE] workers list [--json]
  clearml-agent [--config-file FILE] init [--api-server URL --access-key KEY] [flags]
  clearml-agent [--config-file FILE] config
  clearml-agent list [--all]
  clearml-agent [--config-file FILE] k8s --queue Q[,Q...] [--namespace NS] [--template-yaml FILE] [--max-pods N] [flags]
  clearml-agent server [--listen ADDR] [--data-dir DIR] [--db postgres://...]
  clearml-agent version

Run 'clearml-agent COMMAND --help' for a command's flags.

API errors exit with status 1, command-line mistakes with 2. "tasks logs
--follow" exits 0 when the task completed (or was published or closed), 1 when
it failed and 2 when it was stopped.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g, cmd, rest, err := cliargs.ParseCommandLine(args)
	if err != nil {
		return &UsageError{Msg: err.Error()}
	}
	if g.Version {
		fmt.Fprintf(stdout, "CLEARML-AGENT version %s (Go reimplementation; ClearML API %s)\n", version.Version, version.APIVersion)
		return nil
	}
	switch cmd {
	case "", "help":
		fmt.Fprint(stdout, usage)
		if g.Help || cmd == "help" {
			return errHelp
		}
		return &UsageError{Msg: "no command given"}
	case "version":
		fmt.Fprintf(stdout, "CLEARML-AGENT version %s (Go reimplementation; ClearML API %s)\n", version.Version, version.APIVersion)
		return nil
	case "server":
		return runServer(g, rest, stdout, stderr)
	case "daemon":
		return runDaemon(g, rest, stdout, stderr)
	case "execute":
		return runExecute(g, rest, stdout, stderr)
	case "submit":
		return runSubmit(g, rest, stdout, stderr)
	case "tasks":
		return runTasks(g, rest, stdout, stderr)
	case "queues":
		return runQueues(g, rest, stdout, stderr)
	case "workers":
		return runWorkers(g, rest, stdout, stderr)
	case "init":
		return runInit(g, rest, stdin, stdout, stderr)
	case "config":
		return runConfig(g, rest, stdout)
	case "list":
		return runList(g, rest, stdout, stderr)
	case "k8s":
		return runK8s(g, rest, stdout, stderr)
	case "k8s-install":
		// Inside a task's pod only (the init container).
		return runK8sInstall(rest)
	case executor.ShimCommand:
		// The supervisor of one task process (started by the daemon).
		if code := executor.ShimMain(rest, shimExecute); code != 0 {
			return &exitError{code: code, err: errSilent}
		}
		return nil
	case taskLostCommand:
		// Run by a task's supervisor when no daemon followed the task.
		return runTaskLost(g, rest, stdout)
	case "container-run":
		// Inside a task's container only (docker mode's entry point).
		return runContainerRun(rest, stdout)
	case "container-env":
		if len(rest) != 1 {
			return &UsageError{Msg: "container-env needs one file name"}
		}
		return containerinit.DumpEnv(rest[0])
	default:
		return &UsageError{Msg: fmt.Sprintf("unknown command %q", cmd)}
	}
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// newLogger builds the operator log at the named level, in the format of
// --log-format (or CLEARML_AGENT_LOG_FORMAT): human by default.
func newLogger(g cliargs.Global, w io.Writer, level string) (*slog.Logger, error) {
	l, err := logging.ParseLevel(level)
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	format, err := logging.ParseFormat(cmp.Or(g.LogFormat, os.Getenv(logging.FormatEnv)))
	if err != nil {
		return nil, &UsageError{Msg: err.Error()}
	}
	return logging.New(w, l, format), nil
}
