package args

import (
	"errors"
	"strings"
)

// Option-table building blocks, one per argparse action the agent uses.

const dockerGroup = "Docker support"

// LogLevels are the --log-level choices, in upstream's order.
var LogLevels = []string{"DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"}

// flagOpt is action='store_true'.
func flagOpt(dst *bool, help string, names ...string) *option {
	return &option{names: names, arity: zeroArgs, help: help, set: func([]string) error {
		*dst = true
		return nil
	}}
}

// helpOpt is argparse's automatic -h/--help.
func helpOpt(dst *bool) *option {
	o := flagOpt(dst, "show this help message and exit", "-h", "--help")
	o.exits = true
	return o
}

// strOpt is a plain single-value option; dest is argparse's dest.
func strOpt(dst *string, dest, help string, names ...string) *option {
	return &option{names: names, arity: oneArg, dest: dest, help: help, set: func(v []string) error {
		*dst = v[0]
		return nil
	}}
}

// countOpt is action='count'.
func countOpt(dst *int, dest, help string, names ...string) *option {
	return &option{names: names, arity: zeroArgs, dest: dest, help: help, set: func([]string) error {
		*dst++
		return nil
	}}
}

// listOpt is nargs='+' with the default store action: a later occurrence
// replaces an earlier one.
func listOpt(dst *[]string, dest, help string, names ...string) *option {
	return &option{names: names, arity: someArgs, dest: dest, help: help, set: func(v []string) error {
		*dst = append([]string(nil), v...)
		return nil
	}}
}

// optListOpt is nargs='*': nil until given, empty when given bare.
func optListOpt(dst **[]string, dest, help string, names ...string) *option {
	return &option{names: names, arity: anyArgs, dest: dest, help: help, set: func(v []string) error {
		s := append([]string{}, v...)
		*dst = &s
		return nil
	}}
}

// logLevelOpt is --log-level: upper-cased (argparse type), then checked
// against LogLevels (argparse choices).
func logLevelOpt(dst *string) *option {
	return &option{
		names: []string{"--log-level"}, arity: oneArg, dest: "log_level", choices: LogLevels,
		help: "log level of the task's ClearML SDK (default INFO)",
		set: func(v []string) error {
			level := strings.ToUpper(v[0])
			for _, c := range LogLevels {
				if level == c {
					*dst = level
					return nil
				}
			}
			quoted := make([]string, len(LogLevels))
			for i, c := range LogLevels {
				quoted[i] = pyRepr(c)
			}
			return errors.New("invalid choice: " + pyRepr(level) + " (choose from " + strings.Join(quoted, ", ") + ")")
		},
	}
}

// dockerOpt is --docker [IMAGE [ARGS...]] with our docker-argument tail.
func dockerOpt(dst **[]string, help string) *option {
	o := optListOpt(dst, "docker", help, "--docker")
	o.dockerTail = true
	return o
}

// workerFields are the targets of upstream's WORKER_ARGS, shared by daemon
// and execute.
type workerFields struct {
	optimization       *int
	gitUser, gitPass   *string
	logLevel, gpus     *string
	cpuOnly            *bool
	gpusHelp, cpusHelp string
}

// workerOptions returns WORKER_ARGS split as upstream registers them: the
// ungrouped ones, then the "Docker support" ones.
func workerOptions(w workerFields) (plain, docker []*option) {
	plain = []*option{
		countOpt(w.optimization, "optimization", "Python optimisation level for the task interpreter (-O, -OO)", "-O"),
		strOpt(w.gitUser, "git_user", "git user name for repository access", "--git-user"),
		strOpt(w.gitPass, "git_pass", "git password or personal access token for repository access", "--git-pass"),
		logLevelOpt(w.logLevel),
	}
	gpus := strOpt(w.gpus, "gpus", w.gpusHelp, "--gpus")
	cpu := flagOpt(w.cpuOnly, w.cpusHelp, "--cpu-only")
	gpus.group, cpu.group = dockerGroup, dockerGroup
	return plain, []*option{gpus, cpu}
}
