package docker

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/goclearml/agent/internal/shellwords"
)

// FallbackImage is upstream's code default when nothing else names one.
const FallbackImage = "nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04"

// Container is a task's container section (or what the legacy
// execution.docker_cmd held).
type Container struct {
	Image       string
	Arguments   []string
	SetupScript string
}

// TaskContainer reads a task's container section: the map of API 2.13 and
// later, else the legacy execution.docker_cmd ("IMAGE ARGS...").
func TaskContainer(container map[string]string, execution map[string]any) (Container, error) {
	c := Container{Image: strings.TrimSpace(container["image"]), SetupScript: container["setup_shell_script"]}
	args := container["arguments"]
	if c.Image == "" && args == "" {
		if cmd, _ := execution["docker_cmd"].(string); strings.TrimSpace(cmd) != "" {
			words, err := shellwords.Split(cmd)
			if err != nil {
				return Container{}, fmt.Errorf("reading the task's execution.docker_cmd: %w", err)
			}
			if len(words) > 0 {
				c.Image, c.Arguments = words[0], words[1:]
			}
			return c, nil
		}
	}
	if strings.TrimSpace(args) != "" {
		words, err := shellwords.Split(args)
		if err != nil {
			return Container{}, fmt.Errorf("reading the task's container.arguments: %w", err)
		}
		c.Arguments = words
	}
	// An image stored with its arguments in one string ("img --ipc=host").
	if strings.ContainsAny(c.Image, " \t") {
		words, err := shellwords.Split(c.Image)
		if err != nil {
			return Container{}, fmt.Errorf("reading the task's container.image: %w", err)
		}
		if len(words) > 0 {
			c.Image = words[0]
			c.Arguments = append(words[1:], c.Arguments...)
		}
	}
	return c, nil
}

// Defaults is the agent's side of the image choice.
type Defaults struct {
	// Image and Arguments are the default container: --docker IMAGE ARGS,
	// else CLEARML_DOCKER_IMAGE, else agent.default_docker.image (and its
	// arguments), else FallbackImage.
	Image     string
	Arguments []string
	// FromCLI is true when --docker named an image: the match rules are
	// then not used (upstream's _docker_default_cmd_override).
	FromCLI bool
	// Rules are agent.default_docker.match_rules.
	Rules []MatchRule
	// DisableTaskOverride is agent.disable_task_docker_override: the
	// task's image and arguments are ignored (its setup script is not).
	DisableTaskOverride bool
}

// DefaultsFromCLI builds the default container from the --docker values
// (nil: bare --docker) and the configured default. A first value with
// blanks is "IMAGE ARGS..." in one string.
func DefaultsFromCLI(cli []string, envImage, confImage string, confArgs []string) (Defaults, error) {
	var d Defaults
	if len(cli) > 0 {
		first, err := shellwords.Split(cli[0])
		if err != nil {
			return d, fmt.Errorf("reading --docker %q: %w", cli[0], err)
		}
		if len(first) == 0 || strings.TrimSpace(first[0]) == "" {
			return d, fmt.Errorf("--docker was given an empty image name")
		}
		d.Image, d.FromCLI = first[0], true
		if rest := append(first[1:], cli[1:]...); len(rest) > 0 {
			d.Arguments = rest
		}
		return d, nil
	}
	switch {
	case strings.TrimSpace(envImage) != "":
		words, err := shellwords.Split(envImage)
		if err != nil || len(words) == 0 || strings.TrimSpace(words[0]) == "" {
			return d, fmt.Errorf("reading CLEARML_DOCKER_IMAGE %q: not an image name", envImage)
		}
		d.Image = words[0]
		if len(words) > 1 {
			d.Arguments = words[1:]
		}
	case strings.TrimSpace(confImage) != "":
		d.Image, d.Arguments = strings.TrimSpace(confImage), confArgs
	default:
		d.Image, d.Arguments = FallbackImage, confArgs
	}
	return d, nil
}

// TaskInfo is what the match rules look at.
type TaskInfo struct {
	Project      string // project name
	Repository   string
	Branch       string
	Binary       string
	Requirements string // script.requirements.pip
	Container    Container
}

// Choice is the container a task runs in.
type Choice struct {
	Image       string
	Arguments   []string
	SetupScript string
	// UsedDefault is true when the agent's default (or a match rule's)
	// image is used: it is then written back to the task.
	UsedDefault bool
	// Rule describes the match rule used, if any.
	Rule string
}

// Choose picks the task's container (spec 3.9 "Per-task image
// selection"): the task's own image unless agent.disable_task_docker_override;
// for a task without one, the first matching rule (unless --docker named an
// image), else the default.
func Choose(d Defaults, t TaskInfo) (Choice, error) {
	c := Choice{SetupScript: t.Container.SetupScript}
	if t.Container.Image != "" && !d.DisableTaskOverride {
		c.Image, c.Arguments = t.Container.Image, t.Container.Arguments
	} else {
		c.Image, c.Arguments, c.UsedDefault = d.Image, d.Arguments, true
		if t.Container.Image == "" && !d.FromCLI {
			for i, r := range d.Rules {
				if ok, err := r.Matches(t); err != nil {
					return c, fmt.Errorf("agent.default_docker.match_rules[%d]: %w", i, err)
				} else if ok {
					c.Image, c.Arguments, c.Rule = r.Image, r.Arguments, r.Describe()
					break
				}
			}
		}
	}
	if err := ValidImage(c.Image); err != nil {
		return c, err
	}
	return c, nil
}

// referenceRE is docker's image reference grammar, simplified: an optional
// registry host[:port], lowercase path components, an optional tag and an
// optional digest.
var referenceRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?` +
		`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
		`(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$`)
})

// ValidImage refuses what docker would reject as an image reference.
func ValidImage(image string) error {
	switch {
	case strings.TrimSpace(image) == "":
		return &ArgError{Msg: "no docker image: give one with --docker IMAGE, agent.default_docker.image or the task's container image"}
	case strings.HasPrefix(image, "-"):
		return argErr("docker image %q looks like an option, not an image name", image)
	case len(image) > 512 || !referenceRE().MatchString(image):
		return argErr("invalid docker image reference %q (expected [registry/]name[:tag][@digest], lowercase name)", image)
	}
	return nil
}
