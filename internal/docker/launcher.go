package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/executor"
)

// HostCaches are the host folders containers see; "" leaves one out.
//
// Nothing a container can write is ever run or imported outside it: the
// host's own caches are never mounted writable. The git mirror of the
// task's repository (in VCS, the host's mirror cache) is brought up to
// date on the host and mounted read-only. Pip, Apt, Venvs and SDK are
// folders of containers only, never used on the host, and mounted only
// when Shared (agent.docker_cache_isolation: shared); by default each
// container fills caches of its own, which go with it.
type HostCaches struct {
	VCS                  string
	Pip, Apt, Venvs, SDK string
	Shared               bool
}

// Settings is docker mode as the daemon's configuration and flags set it.
type Settings struct {
	Client   Client
	Defaults Defaults
	// Extra is agent.extra_docker_arguments (or
	// CLEARML_AGENT_EXTRA_DOCKER_ARGS).
	Extra      []string
	Merge      MergeOptions
	Init       InitOptions // Preprocess, Init, OpenCVLibs, Extra; SSH and TaskScript are set per task
	Standalone bool        // --standalone-mode: no set-up script
	ForcePull  bool        // agent.docker_force_pull
	Mounts     InternalMounts
	Caches     HostCaches
	// SSHAuthSock is the host's SSH_AUTH_SOCK (mounted and passed when
	// set); otherwise SSHDir (the host's ~/.ssh, "" when
	// agent.disable_ssh_mount) is copied and mounted read-only.
	SSHAuthSock, SSHDir string
	// GitFiles are ~/.git-credentials and ~/.gitconfig when they exist.
	GitFiles   []Mount
	ConfigTree map[string]any
	Conf       ConfOptions
	GPUs       GPUs
	Labels     []string // CLEARML_AGENT_EXTRA_DOCKER_LABELS
	NameFormat string   // agent.docker_container_name_format ("" = clearml-<task>-<random>)
	Masker     Masker
	// HostNetwork: the API server is on this host's loopback.
	HostNetwork bool
	// Self is this binary, mounted read-only as the container's entry
	// point; it must be statically linked.
	Self string
	// InnerArgv is the execute command for a task, as run inside.
	InnerArgv func(taskID string) []string
	// PassEnv names host variables given to every container when set
	// (pip resolution settings, skip switches), by name only.
	PassEnv []string
	// PrepareRepo, when set, brings the host's git mirror of a task's
	// repository up to date for its revision (script is the task's script
	// section) and returns the mirror's folder, which the container sees
	// read-only.
	PrepareRepo func(ctx context.Context, script map[string]any, logf func(level, msg string)) (string, error)
	// WorkDir holds the per-task files (configuration, set-up script).
	WorkDir      string
	ParentWorker string
	Images       *ImageUsage // records images used, for the cleanup policy (nil: none)
	// Exec runs the docker CLI under its shim (default: a plain executor).
	Exec *executor.Executor
	Log  *slog.Logger
}

// Launcher runs each task in its own container.
type Launcher struct {
	s      Settings
	runner *Runner
}

// NewLauncher checks the settings and builds a launcher.
func NewLauncher(s Settings) (*Launcher, error) {
	if err := ValidImage(s.Defaults.Image); err != nil && s.Defaults.FromCLI {
		return nil, err
	}
	if err := checkStatic(s.Self); err != nil {
		return nil, err
	}
	if _, err := ParseArgs(s.Extra); err != nil {
		return nil, fmt.Errorf("agent.extra_docker_arguments: %w", err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ex := s.Exec
	if ex == nil {
		ex = &executor.Executor{Log: s.Log}
	}
	return &Launcher{s: s, runner: &Runner{Client: s.Client, Exec: ex, Log: s.Log}}, nil
}

// Run runs a launched task's container (the daemon's executor).
func (l *Launcher) Run(ctx context.Context, spec executor.Spec, out io.Writer) (executor.Exit, error) {
	return l.runner.Run(ctx, spec, out)
}

// Attach follows a task's container started by an earlier daemon.
func (l *Launcher) Attach(ctx context.Context, spec executor.Spec, offset int64, out io.Writer) (executor.Exit, error) {
	return l.runner.Attach(ctx, spec, offset, out)
}

// Launch turns a task's process-mode spec (its environment holds
// CLEARML_WORKER_ID and the like) into the docker run that runs it. Task
// log lines go to logf. An error fails the task before anything started.
func (l *Launcher) Launch(ctx context.Context, tapi *apiclient.Client, taskID string, spec executor.Spec, logf func(level, msg string)) (executor.Spec, func(), error) {
	s := l.s
	prep, err := PrepareTask(ctx, tapi, taskID, Selection{Defaults: s.Defaults, Extra: s.Extra, Merge: s.Merge, Masker: s.Masker, Log: s.Log}, logf)
	if err != nil {
		return spec, nil, err
	}
	task, choice, merged := prep.Task, prep.Choice, prep.Merged
	if s.ForcePull {
		if err := l.pull(ctx, choice.Image, logf); err != nil {
			return spec, nil, err
		}
	}
	mirror := ""
	if repo, _ := task.Script["repository"].(string); strings.TrimSpace(repo) != "" && s.PrepareRepo != nil && s.Caches.VCS != "" {
		if mirror, err = s.PrepareRepo(ctx, task.Script, logf); err != nil {
			// The container clones the repository itself, privately.
			logf("WARNING", "bringing the cached mirror of the repository up to date on the host: "+err.Error())
			mirror = ""
		}
	}
	run, cleanup, err := l.runSpec(taskID, spec, choice, merged, mirror)
	if err != nil {
		return spec, nil, err
	}
	argv := run.Argv(s.Client.bin())
	logf("INFO", "Executing: "+fmt.Sprint(s.Masker.Mask(argv)))
	if s.Images != nil {
		s.Images.Used(choice.Image)
	}
	out := spec
	out.Argv = argv
	out.Env = l.cliEnv(spec.Env, append(run.PassEnv, merged.PassEnv...))
	return out, cleanup, nil
}

func projectName(ctx context.Context, tapi *apiclient.Client, id string) string {
	var resp struct {
		Project struct {
			Name string `json:"name"`
		} `json:"project"`
	}
	if err := tapi.Call(ctx, "2.13", "projects.get_by_id", map[string]any{"project": id}, &resp, apiclient.Default); err != nil {
		return ""
	}
	return resp.Project.Name
}

func (l *Launcher) pull(ctx context.Context, image string, logf func(string, string)) error {
	logf("INFO", "Pulling docker image "+image)
	if _, err := l.s.Client.Output(ctx, "pull", "--quiet", image); err != nil {
		return fmt.Errorf("pulling %s (agent.docker_force_pull): %w", image, err)
	}
	return nil
}

// envValue reads NAME from a KEY=VALUE list (the last one wins).
func envValue(env []string, name string) (string, bool) {
	v, found := "", false
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, name+"="); ok {
			v, found = val, true
		}
	}
	return v, found
}

// cliEnv is the docker CLI's environment: what the CLI itself needs, plus
// the variables passed by name into the container.
func (l *Launcher) cliEnv(child []string, pass []string) []string {
	var env []string
	keep := []string{"PATH", "HOME", "USER", "XDG_RUNTIME_DIR", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
		"DOCKER_TLS_VERIFY", "DOCKER_CONTEXT", "DOCKER_API_VERSION", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
		"http_proxy", "https_proxy", "no_proxy"}
	seen := map[string]bool{}
	for _, name := range append(keep, pass...) {
		if seen[name] {
			continue
		}
		seen[name] = true
		if v, ok := envValue(child, name); ok {
			env = append(env, name+"="+v)
		} else if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

func randomString(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
