package docker

import (
	"regexp"
	"strings"
)

// Filters and the hardened preset decide which of a task's docker options
// are kept (the agent's own options are the operator's and are not
// checked).

// filterForms are the spellings of an option that an
// agent.docker_args_filters expression is matched against: --name (any
// value), --name=value, each alias (--net for --network), and for an
// option with a one-letter form, -x and "-x value".
func filterForms(a Arg) []string {
	names := []string{"--" + a.Name}
	for alias, spec := range runOptions.long {
		if spec.long == a.Name && alias != a.Name {
			names = append(names, "--"+alias)
		}
	}
	var forms []string
	for _, n := range names {
		forms = append(forms, n)
		if a.HasValue {
			forms = append(forms, n+"="+a.Value)
		}
	}
	if spec, ok := runOptions.long[a.Name]; ok && spec.short != 0 {
		short := "-" + string(spec.short)
		forms = append(forms, short)
		if a.HasValue {
			forms = append(forms, short+" "+a.Value)
		}
	}
	return forms
}

// allowed reports whether a filter matches one of the option's forms as a
// whole (from its first character to its last): "^--env" allows --env
// with any value, and not --env-file. filters are anchored (see anchor).
func allowed(a Arg, filters []*regexp.Regexp) bool {
	forms := filterForms(a)
	for _, f := range filters {
		for _, s := range forms {
			if f.MatchString(s) {
				return true
			}
		}
	}
	return false
}

// anchor makes each filter match whole strings only.
func anchor(filters []*regexp.Regexp) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(filters))
	for _, f := range filters {
		out = append(out, regexp.MustCompile(`^(?:`+f.String()+`)$`)) // a valid expression stays valid
	}
	return out
}

// hostNamespaceOptions share a namespace of the host, or of another
// container, when their value is "host" or "container:...".
var hostNamespaceOptions = map[string]bool{"pid": true, "ipc": true, "uts": true, "userns": true, "cgroupns": true, "network": true}

// hardenedRefusal says why agent.docker_args_hardened drops a task
// option, or returns "" when the option is kept. The preset keeps a task
// from reaching the host through its container: no host folder (-v with a
// host path, a bind mount, a volume bound to a host path), no device, no
// capability, no privileged mode, no namespace of the host or of another
// container, no security profile turned off, no host file read by the
// docker CLI (--env-file), no docker API socket.
func hardenedRefusal(a Arg) string {
	v := a.Value
	switch a.Name {
	case "privileged":
		if !a.HasValue || v == "" || strings.EqualFold(v, "true") || v == "1" {
			return "privileged mode"
		}
	case "cap-add":
		return "added capabilities"
	case "device", "device-cgroup-rule":
		return "host devices"
	case "volume":
		src, _, hasDst := strings.Cut(v, ":")
		if hasDst && (strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "~")) {
			return "a host folder"
		}
	case "mount":
		return mountRefusal(v)
	case "volumes-from":
		return "another container's volumes"
	case "volume-driver":
		return "a volume driver"
	case "env-file", "label-file":
		return "a file read on the host"
	case "security-opt":
		switch strings.ToLower(strings.ReplaceAll(v, ":", "=")) {
		case "no-new-privileges", "no-new-privileges=true":
		default:
			return "a changed security profile"
		}
	case "cgroup-parent":
		return "a cgroup outside the agent's"
	case "use-api-socket":
		return "the docker API socket"
	}
	if hostNamespaceOptions[a.Name] && (strings.EqualFold(v, "host") || strings.HasPrefix(strings.ToLower(v), "container:")) {
		return "a namespace of the host or of another container"
	}
	return ""
}

// mountRefusal checks a --mount value: tmpfs mounts and plain named
// volumes are kept; binds, and volumes with a driver or driver options
// (the local driver binds host paths with volume-opt), are not.
func mountRefusal(v string) string {
	typ := "volume"
	for _, field := range strings.Split(v, ",") {
		key, val, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch strings.ToLower(key) {
		case "type":
			typ = strings.ToLower(val)
		case "volume-opt", "volume-driver", "bind-propagation", "bind-recursive", "bind-nonrecursive":
			return "a volume bound to a host path"
		}
	}
	switch typ {
	case "tmpfs", "volume":
		return ""
	}
	return "a host folder"
}
