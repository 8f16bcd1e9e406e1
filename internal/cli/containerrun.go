package cli

import (
	"io"

	"github.com/goclearml/agent/internal/containerinit"
)

// runContainerRun is the entry point of a task's container (docker mode):
// `container-run [--init SCRIPT] -- COMMAND...`. It exits with the task's
// status.
func runContainerRun(argv []string, stdout io.Writer) error {
	var o containerinit.Options
	for len(argv) > 0 && argv[0] != "--" {
		switch {
		case argv[0] == "--init" && len(argv) > 1:
			o.Script = argv[1]
			argv = argv[2:]
		default:
			return &UsageError{Msg: "container-run: usage: container-run [--init SCRIPT] -- COMMAND..."}
		}
	}
	if len(argv) < 2 {
		return &UsageError{Msg: "container-run: no command after --"}
	}
	o.Argv, o.Stdout = argv[1:], stdout
	if code := containerinit.Run(o); code != 0 {
		return &exitError{code: code, err: errSilent}
	}
	return nil
}
