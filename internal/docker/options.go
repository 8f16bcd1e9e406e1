// Package docker runs tasks in containers through the docker command line:
// it parses and merges free-form `docker run` arguments exactly as the
// docker CLI reads them, chooses each task's image, assembles the final
// `docker run` command (mounts, variables, labels, GPUs), masks it for the
// task log, supervises the container (abort = docker stop with the grace
// period, then removal) and cleans up old containers and images.
package docker

import (
	"fmt"
	"strings"
)

// optKind says whether a docker run option takes a value.
type optKind int

const (
	boolOpt  optKind = iota // --rm, --rm=false; never a separate value token
	valueOpt                // --env K=V, --env=K=V, -e K=V, -eK=V, -e=K=V
)

type optSpec struct {
	long  string // canonical long name, without dashes
	short byte   // one-letter form, 0 if none
	kind  optKind
}

// runOptions is every option `docker run` accepts (docker CLI 20.10 to
// 28), with its aliases. An option not listed here is refused: docker
// would refuse it too, after the agent had already taken the task.
var runOptions = buildOptionTable([]optSpec{
	{"add-host", 0, valueOpt}, {"annotation", 0, valueOpt}, {"attach", 'a', valueOpt},
	{"blkio-weight", 0, valueOpt}, {"blkio-weight-device", 0, valueOpt},
	{"cap-add", 0, valueOpt}, {"cap-drop", 0, valueOpt}, {"cgroup-parent", 0, valueOpt}, {"cgroupns", 0, valueOpt},
	{"cidfile", 0, valueOpt}, {"cpu-count", 0, valueOpt}, {"cpu-percent", 0, valueOpt}, {"cpu-period", 0, valueOpt},
	{"cpu-quota", 0, valueOpt}, {"cpu-rt-period", 0, valueOpt}, {"cpu-rt-runtime", 0, valueOpt},
	{"cpu-shares", 'c', valueOpt}, {"cpus", 0, valueOpt}, {"cpuset-cpus", 0, valueOpt}, {"cpuset-mems", 0, valueOpt},
	{"detach", 'd', boolOpt}, {"detach-keys", 0, valueOpt}, {"device", 0, valueOpt}, {"device-cgroup-rule", 0, valueOpt},
	{"device-read-bps", 0, valueOpt}, {"device-read-iops", 0, valueOpt}, {"device-write-bps", 0, valueOpt},
	{"device-write-iops", 0, valueOpt}, {"disable-content-trust", 0, boolOpt},
	{"dns", 0, valueOpt}, {"dns-option", 0, valueOpt}, {"dns-search", 0, valueOpt}, {"domainname", 0, valueOpt},
	{"entrypoint", 0, valueOpt}, {"env", 'e', valueOpt}, {"env-file", 0, valueOpt}, {"expose", 0, valueOpt},
	{"gpus", 0, valueOpt}, {"group-add", 0, valueOpt},
	{"health-cmd", 0, valueOpt}, {"health-interval", 0, valueOpt}, {"health-retries", 0, valueOpt},
	{"health-start-interval", 0, valueOpt}, {"health-start-period", 0, valueOpt}, {"health-timeout", 0, valueOpt},
	{"help", 0, boolOpt}, {"hostname", 'h', valueOpt}, {"init", 0, boolOpt}, {"interactive", 'i', boolOpt},
	{"io-maxbandwidth", 0, valueOpt}, {"io-maxiops", 0, valueOpt}, {"ip", 0, valueOpt}, {"ip6", 0, valueOpt},
	{"ipc", 0, valueOpt}, {"isolation", 0, valueOpt}, {"kernel-memory", 0, valueOpt},
	{"label", 'l', valueOpt}, {"label-file", 0, valueOpt}, {"link", 0, valueOpt}, {"link-local-ip", 0, valueOpt},
	{"log-driver", 0, valueOpt}, {"log-opt", 0, valueOpt}, {"mac-address", 0, valueOpt},
	{"memory", 'm', valueOpt}, {"memory-reservation", 0, valueOpt}, {"memory-swap", 0, valueOpt},
	{"memory-swappiness", 0, valueOpt}, {"mount", 0, valueOpt}, {"name", 0, valueOpt},
	{"network", 0, valueOpt}, {"network-alias", 0, valueOpt}, {"no-healthcheck", 0, boolOpt},
	{"oom-kill-disable", 0, boolOpt}, {"oom-score-adj", 0, valueOpt}, {"pid", 0, valueOpt}, {"pids-limit", 0, valueOpt},
	{"platform", 0, valueOpt}, {"privileged", 0, boolOpt}, {"publish", 'p', valueOpt}, {"publish-all", 'P', boolOpt},
	{"pull", 0, valueOpt}, {"quiet", 'q', boolOpt}, {"read-only", 0, boolOpt}, {"restart", 0, valueOpt},
	{"rm", 0, boolOpt}, {"runtime", 0, valueOpt}, {"security-opt", 0, valueOpt}, {"shm-size", 0, valueOpt},
	{"sig-proxy", 0, boolOpt}, {"stop-signal", 0, valueOpt}, {"stop-timeout", 0, valueOpt},
	{"storage-opt", 0, valueOpt}, {"sysctl", 0, valueOpt}, {"tmpfs", 0, valueOpt}, {"tty", 't', boolOpt},
	{"ulimit", 0, valueOpt}, {"use-api-socket", 0, boolOpt}, {"user", 'u', valueOpt}, {"userns", 0, valueOpt},
	{"uts", 0, valueOpt}, {"volume", 'v', valueOpt}, {"volume-driver", 0, valueOpt}, {"volumes-from", 0, valueOpt},
	{"workdir", 'w', valueOpt},
}, map[string]string{"net": "network", "net-alias": "network-alias", "dns-opt": "dns-option"})

type optionTable struct {
	long  map[string]optSpec // every long name and alias
	short map[byte]optSpec
}

func buildOptionTable(specs []optSpec, aliases map[string]string) optionTable {
	t := optionTable{long: map[string]optSpec{}, short: map[byte]optSpec{}}
	for _, s := range specs {
		t.long[s.long] = s
		if s.short != 0 {
			t.short[s.short] = s
		}
	}
	for alias, name := range aliases {
		t.long[alias] = t.long[name]
	}
	return t
}

// Arg is one parsed docker run option.
type Arg struct {
	Name  string // canonical long name: "env", "volume", "rm"
	Value string // the value; for a boolean, "" or what followed "="
	// HasValue is false for a bare boolean (--rm).
	HasValue bool
}

// Tokens renders the option in one canonical form (--name=value), which
// the docker CLI reads exactly as the user's form.
func (a Arg) Tokens() []string {
	if !a.HasValue {
		return []string{"--" + a.Name}
	}
	return []string{"--" + a.Name + "=" + a.Value}
}

// String is the option as one shell-like word, for messages.
func (a Arg) String() string { return a.Tokens()[0] }

// ArgError is a docker argument the agent refuses; the task fails with it.
type ArgError struct{ Msg string }

func (e *ArgError) Error() string { return e.Msg }

func argErr(format string, a ...any) error { return &ArgError{Msg: fmt.Sprintf(format, a...)} }

// ParseArgs reads docker run options the way the docker CLI (pflag) does:
// --name value, --name=value, -x value, -xvalue, -x=value, -abc for
// boolean shorthands, --bool=false. Every token must be an option or an
// option's value: a positional word (docker would take it for the image)
// or an unknown option is an error, and so is an empty value.
func ParseArgs(tokens []string) ([]Arg, error) {
	var out []Arg
	for i := 0; i < len(tokens); i++ {
		tok := tokens[i]
		next := func(name string) (string, error) {
			if i+1 >= len(tokens) {
				return "", argErr("docker option %s needs a value", name)
			}
			i++
			return tokens[i], nil
		}
		switch {
		case tok == "--":
			if i+1 < len(tokens) {
				return nil, argErr("unexpected %q after \"--\" in the docker arguments: the image and command are set by the agent", tokens[i+1])
			}
		case strings.HasPrefix(tok, "--"):
			name, val, hasVal := strings.Cut(tok[2:], "=")
			spec, ok := runOptions.long[name]
			if !ok || name == "" {
				return nil, argErr("unknown docker run option %q", "--"+name)
			}
			if spec.kind == valueOpt && !hasVal {
				v, err := next("--" + name)
				if err != nil {
					return nil, err
				}
				val, hasVal = v, true
			}
			a, err := makeArg(spec, "--"+name, val, hasVal)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		case strings.HasPrefix(tok, "-") && len(tok) > 1:
			args, consumed, err := parseShorts(tok, tokens[i+1:])
			if err != nil {
				return nil, err
			}
			i += consumed
			out = append(out, args...)
		default:
			return nil, argErr("unexpected word %q in the docker arguments: only docker run options are allowed here "+
				"(the image is chosen separately and the command is set by the agent)", tok)
		}
	}
	return out, nil
}

// parseShorts reads one "-abc" token; it returns how many of the
// following tokens it used as a value (0 or 1).
func parseShorts(tok string, rest []string) ([]Arg, int, error) {
	var out []Arg
	chars := tok[1:]
	for j := 0; j < len(chars); j++ {
		c := chars[j]
		spec, ok := runOptions.short[c]
		if !ok {
			return nil, 0, argErr("unknown docker run option \"-%c\" in %q", c, tok)
		}
		flag := "-" + string(c)
		if spec.kind == boolOpt {
			if j+1 < len(chars) && chars[j+1] == '=' {
				a, err := makeArg(spec, flag, chars[j+2:], true)
				return append(out, a), 0, err
			}
			a, _ := makeArg(spec, flag, "", false)
			out = append(out, a)
			continue
		}
		val := chars[j+1:]
		used := 0
		switch {
		case strings.HasPrefix(val, "="):
			val = val[1:]
		case val == "":
			if len(rest) == 0 {
				return nil, 0, argErr("docker option %s needs a value", flag)
			}
			val, used = rest[0], 1
		}
		a, err := makeArg(spec, flag, val, true)
		return append(out, a), used, err
	}
	return out, 0, nil
}

func makeArg(spec optSpec, flag, val string, hasVal bool) (Arg, error) {
	if spec.kind == boolOpt && hasVal {
		switch strings.ToLower(val) {
		case "1", "t", "true", "0", "f", "false":
		default:
			return Arg{}, argErr("docker option %s takes true or false, not %q", flag, val)
		}
	}
	if spec.kind == valueOpt && strings.TrimSpace(val) == "" {
		return Arg{}, argErr("docker option %s has an empty value", flag)
	}
	if spec.long == "env" {
		if name, _, _ := strings.Cut(val, "="); strings.TrimSpace(name) == "" {
			return Arg{}, argErr("docker option %s %q has no variable name", flag, val)
		}
	}
	return Arg{Name: spec.long, Value: val, HasValue: hasVal}, nil
}

// Render turns parsed options back into docker CLI tokens.
func Render(args []Arg) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		out = append(out, a.Tokens()...)
	}
	return out
}
