package docker

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// MergeOptions are the agent.* settings that decide how the agent's own
// docker arguments and a task's arguments combine (spec 3.9 "Argument
// merge", config keys of spec 6.4).
type MergeOptions struct {
	// ExtraPrecedesTask is agent.docker_args_extra_precedes_task (default
	// true): the agent's arguments come first and the task's follow, minus
	// the protected switches the agent already set. False swaps the roles.
	ExtraPrecedesTask bool
	// Protected is agent.protected_docker_extra_args (option names without
	// dashes; default privileged, security-opt, network, ipc).
	Protected []string
	// Filters is agent.docker_args_filters: when set, a task option is kept
	// only if one expression matches one of its forms as a whole (see
	// filterForms): "--name", "--name=value", "-x", "-x value".
	Filters []*regexp.Regexp
	// Forbidden is agent.forbidden_docker_args (default entrypoint): task
	// options that are dropped.
	Forbidden []string
	// AllowHostEnv is agent.docker_allow_host_environ: $VAR in the task's
	// -e values, and -e NAME without a value, read the agent host's
	// environment. The agent's own arguments always may.
	AllowHostEnv bool
	// LookupEnv reads the host environment (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// TaskGPUs keeps the task's --gpus (the Kubernetes executor turns it
	// into an nvidia.com/gpu request, capped by the pod template); docker
	// mode drops it, GPU access being the agent's --gpus.
	TaskGPUs bool
	// Hardened is agent.docker_args_hardened (ours): task options that
	// reach the host are dropped (see hardenedRefusal).
	Hardened bool
}

// DefaultProtected is upstream's protected_docker_extra_args default.
var DefaultProtected = []string{"privileged", "security-opt", "network", "ipc"}

// DefaultForbidden is upstream's forbidden_docker_args default.
var DefaultForbidden = []string{"entrypoint"}

// Merged is the result of Merge.
type Merged struct {
	Args []Arg
	// Notes say what was dropped or replaced, and why, for the task log.
	Notes []string
	// PassEnv are host variables that -e NAME (no value) passes into the
	// container: the docker CLI must have them in its environment.
	PassEnv []string
	// AgentGPUs is true when the agent's own arguments set --gpus (the
	// agent then adds none of its own).
	AgentGPUs bool
}

// managed options cannot come from anyone's arguments: the agent
// supervises the container and needs them its own way.
var managed = map[string]string{
	"detach":  "the agent follows the container's output until it ends",
	"cidfile": "the agent tracks its containers by label",
	"help":    "it prints help instead of running the task",
	"restart": "the agent removes the container when the task ends (--rm), which docker refuses with a restart policy",
}

// Merge combines the agent's docker arguments (agent.extra_docker_arguments
// or CLEARML_AGENT_EXTRA_DOCKER_ARGS, plus the default image's arguments
// when the default is used) with the task's (container.arguments), as one
// documented rule:
//
//  1. Both lists are parsed as the docker CLI parses them; an unknown
//     option, a positional word or an empty value is an error.
//  2. Options the agent manages (--detach, --cidfile, --restart, --help)
//     are errors wherever they appear; --rm is dropped (the agent adds it).
//  3. Task options are dropped, each with a note: forbidden ones
//     (agent.forbidden_docker_args), ones no agent.docker_args_filters
//     expression allows, --gpus (GPU access is the agent's --gpus and
//     --cpu-only), and -e NAME without a value unless
//     agent.docker_allow_host_environ.
//  4. $VAR and ${VAR} in -e values are expanded from the host environment:
//     always in the agent's options, in the task's only with
//     agent.docker_allow_host_environ. A variable that is not set is an
//     error, never a silently empty value.
//  5. Order: agent options then task options (ExtraPrecedesTask, the
//     default), or the reverse. The list that comes second loses every
//     protected switch (agent.protected_docker_extra_args) that the first
//     already set. For other single-value options the later one wins, as
//     on the docker command line.
func Merge(extra, task []string, o MergeOptions) (Merged, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	o.Filters = anchor(o.Filters)
	var m Merged
	agentArgs, err := ParseArgs(extra)
	if err != nil {
		return m, fmt.Errorf("agent docker arguments (agent.extra_docker_arguments or the default image's arguments): %w", err)
	}
	taskArgs, err := ParseArgs(task)
	if err != nil {
		return m, fmt.Errorf("task docker arguments (container.arguments): %w", err)
	}
	if agentArgs, err = m.prepare(agentArgs, true, o); err != nil {
		return m, fmt.Errorf("agent docker arguments: %w", err)
	}
	if taskArgs, err = m.prepare(taskArgs, false, o); err != nil {
		return m, fmt.Errorf("task docker arguments: %w", err)
	}
	first, second, secondName := agentArgs, taskArgs, "task"
	if !o.ExtraPrecedesTask {
		first, second, secondName = taskArgs, agentArgs, "agent"
	}
	set := map[string]string{}
	for _, a := range first {
		if contains(o.Protected, a.Name) {
			set[a.Name] = a.String()
		}
	}
	m.Args = append(m.Args, first...)
	for _, a := range second {
		if winner, ok := set[a.Name]; ok {
			m.Notes = append(m.Notes, fmt.Sprintf("%s docker argument %s replaced by %s (protected switch)", secondName, a, winner))
			continue
		}
		m.Args = append(m.Args, a)
	}
	return m, nil
}

// prepare applies rules 2 to 4 to one list.
func (m *Merged) prepare(args []Arg, fromAgent bool, o MergeOptions) ([]Arg, error) {
	out := args[:0:0]
	for _, a := range args {
		if why, ok := managed[a.Name]; ok {
			return nil, argErr("docker option --%s is not allowed: %s", a.Name, why)
		}
		switch {
		case a.Name == "rm":
			continue
		case a.Name == "gpus" && fromAgent:
			m.AgentGPUs = true
		case fromAgent:
		case contains(o.Forbidden, a.Name):
			m.Notes = append(m.Notes, fmt.Sprintf("task docker argument %s dropped (agent.forbidden_docker_args)", a))
			continue
		case o.Hardened && hardenedRefusal(a) != "":
			m.Notes = append(m.Notes, fmt.Sprintf("task docker argument %s dropped (agent.docker_args_hardened: %s)", a, hardenedRefusal(a)))
			continue
		case len(o.Filters) > 0 && !allowed(a, o.Filters):
			m.Notes = append(m.Notes, fmt.Sprintf("task docker argument %s dropped (not allowed by agent.docker_args_filters)", a))
			continue
		case a.Name == "gpus" && !o.TaskGPUs:
			m.Notes = append(m.Notes, fmt.Sprintf("task docker argument %s dropped: GPU access is set by the agent (--gpus, --cpu-only)", a))
			continue
		}
		if a.Name == "env" {
			keep, err := m.expandEnv(&a, fromAgent || o.AllowHostEnv, o.LookupEnv)
			if err != nil {
				return nil, err
			}
			if !keep {
				continue
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// expandEnv expands host variables in one -e value. It returns false when
// the option is dropped.
func (m *Merged) expandEnv(a *Arg, hostEnv bool, lookup func(string) (string, bool)) (bool, error) {
	name, val, hasVal := strings.Cut(a.Value, "=")
	if !hasVal {
		if !hostEnv {
			m.Notes = append(m.Notes, fmt.Sprintf("task docker argument --env=%s dropped: it passes a host variable, "+
				"which needs agent.docker_allow_host_environ", name))
			return false, nil
		}
		if _, ok := lookup(name); !ok {
			return false, argErr("docker option --env=%s passes host variable %s, which is not set on the agent's host", name, name)
		}
		m.PassEnv = append(m.PassEnv, name)
		return true, nil
	}
	if !hostEnv || !strings.Contains(val, "$") {
		return true, nil
	}
	var missing []string
	expanded := os.Expand(val, func(v string) string {
		s, ok := lookup(v)
		if !ok {
			missing = append(missing, v)
		}
		return s
	})
	if len(missing) > 0 {
		return false, argErr("docker option --env=%s=%s uses host variable %s, which is not set on the agent's host", name, val, missing[0])
	}
	a.Value = name + "=" + expanded
	return true, nil
}

// contains reports whether list names option s; entries may have dashes
// or be aliases ("--net" names "network").
func contains(list []string, s string) bool {
	for _, x := range list {
		x = strings.TrimLeft(strings.TrimSpace(x), "-")
		if spec, ok := runOptions.long[x]; ok {
			x = spec.long
		}
		if x == s {
			return true
		}
	}
	return false
}
