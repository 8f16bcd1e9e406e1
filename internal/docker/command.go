package docker

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Paths inside the container where the agent puts its own files.
const (
	AgentDir       = "/opt/clearml-agent"
	AgentBinary    = AgentDir + "/clearml-agent"
	InitScriptPath = AgentDir + "/init.sh"
	ConfigPath     = "/tmp/clearml.conf"
)

// Labels the agent puts on its containers.
const (
	LabelWorker       = "clearml-worker-id"
	LabelParentWorker = "clearml-parent-worker-id"
	LabelTask         = "clearml-task-id"
	LabelRun          = "clearml-agent-run"
)

// Mount is one bind mount.
type Mount struct {
	Host, Container string
	ReadOnly        bool
}

func (m Mount) arg() string {
	s := "--volume=" + m.Host + ":" + m.Container
	if m.ReadOnly {
		s += ":ro"
	}
	return s
}

// GPUs says how the container gets GPUs.
type GPUs struct {
	// Visible is the agent's NVIDIA_VISIBLE_DEVICES: "" (not set), "all",
	// "none" or a list such as "0,1" or "0:1" (MIG).
	Visible string
	// HostHasGPUs: with Visible "" or "all", --gpus all is added only
	// when the host has NVIDIA GPUs (docker refuses the flag otherwise).
	HostHasGPUs bool
	// SkipFlag is CLEARML_DOCKER_SKIP_GPUS_FLAG (docker before 19.03): no
	// --gpus; the devices go in NVIDIA_VISIBLE_DEVICES only.
	SkipFlag bool
	// AgentSet is true when the agent's own docker arguments hold --gpus.
	AgentSet bool
}

// flag returns the --gpus argument (or "") and the container's
// NVIDIA_VISIBLE_DEVICES.
func (g GPUs) flag() (arg, visible string) {
	v := strings.TrimSpace(g.Visible)
	switch {
	case v == "none":
		return "", "none"
	case v == "" || v == "all":
		if g.AgentSet || g.SkipFlag || !g.HostHasGPUs {
			return "", "all"
		}
		return "--gpus=all", "all"
	}
	list := strings.ReplaceAll(v, ".", ":")
	if g.AgentSet || g.SkipFlag {
		return "", list
	}
	// docker reads the value as CSV: the quotes keep the list one field.
	return `--gpus="device=` + list + `"`, list
}

// RunSpec is one task's container.
type RunSpec struct {
	Image string
	Args  []Arg // the merged user arguments
	GPUs  GPUs
	// Labels are "key=value" pairs.
	Labels []string
	// Env are "NAME=value" pairs set in the container; PassEnv are names
	// whose values the docker CLI passes from its own environment (secrets
	// never appear on a command line).
	Env     []string
	PassEnv []string
	Mounts  []Mount
	// Name is the container name; it is not set when the arguments name
	// the container already.
	Name string
	// HostNetwork adds --network=host unless the arguments set a network
	// (the API server is on the host's loopback).
	HostNetwork bool
	// Command runs in the container with the agent's binary as entry point.
	Command []string
}

// Argv is the complete docker run command line.
func (s RunSpec) Argv(dockerBin string) []string {
	argv := []string{dockerBin, "run"}
	gpuArg, visible := s.GPUs.flag()
	if gpuArg != "" {
		argv = append(argv, gpuArg)
	}
	argv = append(argv, Render(s.Args)...)
	for _, l := range s.Labels {
		argv = append(argv, "--label="+l)
	}
	if s.HostNetwork && !s.has("network") {
		argv = append(argv, "--network=host")
	}
	env := append([]string{"NVIDIA_VISIBLE_DEVICES=" + visible}, s.Env...)
	for _, e := range env {
		argv = append(argv, "--env="+e)
	}
	for _, name := range s.PassEnv {
		argv = append(argv, "--env="+name)
	}
	for _, m := range s.Mounts {
		argv = append(argv, m.arg())
	}
	if s.Name != "" && !s.has("name") {
		argv = append(argv, "--name="+s.Name)
	}
	argv = append(argv, "--rm", "--entrypoint="+AgentBinary, s.Image)
	return append(argv, s.Command...)
}

func (s RunSpec) has(name string) bool {
	for _, a := range s.Args {
		if a.Name == name {
			return true
		}
	}
	return false
}

// IsLoopbackServer reports whether an API server URL points at this
// host's loopback, which a container reaches only on the host network.
func IsLoopbackServer(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ContainerName renders agent.docker_container_name_format: Python format
// fields {task_id}, {worker_id}, {rand_string} and any field given in
// extra, each optionally cut as {name:.N}. The result must be a valid
// container name.
func ContainerName(format string, fields map[string]string) (string, error) {
	var b strings.Builder
	rest := format
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("agent.docker_container_name_format %q: unclosed {", format)
		}
		field := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		name, spec, _ := strings.Cut(field, ":")
		v, ok := fields[name]
		if !ok {
			return "", fmt.Errorf("agent.docker_container_name_format %q: unknown field {%s}", format, name)
		}
		if spec != "" {
			n, ok := strings.CutPrefix(spec, ".")
			limit, err := strconv.Atoi(n)
			if !ok || err != nil || limit < 0 {
				return "", fmt.Errorf("agent.docker_container_name_format %q: {%s}: only a length such as {%s:.8} is supported", format, field, name)
			}
			if limit < len(v) {
				v = v[:limit]
			}
		}
		b.WriteString(v)
	}
	name := sanitizeName(b.String())
	if !nameRE().MatchString(name) {
		return "", fmt.Errorf("container name %q from agent.docker_container_name_format is not valid (must match %s)", name, nameRE())
	}
	return name, nil
}

// sanitizeName replaces what a container name may not hold (worker ids
// carry ':').
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`) })
