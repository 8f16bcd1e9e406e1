package taskprep

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/shellwords"
	"github.com/goclearml/agent/internal/vcs"
)

// dockerPassEnv are host variables every container receives by name when
// they are set: pip's index settings and the install switches.
var dockerPassEnv = []string{"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST",
	"PIP_CERT", "PIP_CONSTRAINT", "CLEARML_EXTRA_PIP_INSTALL_FLAGS", "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL",
	"CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL"}

// DockerMode is what the daemon needs for --docker: the launcher that
// runs each task in its container, and what the cleanup loop needs.
type DockerMode struct {
	Launcher *docker.Launcher
	Cleanup  docker.CleanupPolicy
	Client   docker.Client
	Images   *docker.ImageUsage
	Defaults docker.Defaults
}

// DockerOptions are the daemon's part of docker mode: its flags and
// identity.
type DockerOptions struct {
	// CLI is --docker's values (image and arguments; empty when --docker
	// was given alone).
	CLI        []string
	Standalone bool // --standalone-mode
	OwnerToken bool // --use-owner-token
	WorkerID   string
	// Visible is the GPUs the daemon may use (--gpus), "" for all.
	Visible string
	// Self is this program's path, mounted into containers; Inner gives
	// the command a container runs for a task.
	Self  string
	Inner func(taskID string) []string
	Exec  *executor.Executor
	Log   *slog.Logger
}

// dockerArgs reads a docker argument setting given as a list or as one
// string; a list item that is an option with blanks ("-e A=B") is split.
func dockerArgs(cfg *config.Config, key string) ([]string, error) {
	v, ok := cfg.Raw.Get(key)
	if !ok || v == nil {
		return nil, nil
	}
	list, err := docker.StringOrList(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var out []string
	for _, a := range list {
		if strings.HasPrefix(a, "-") && strings.ContainsAny(a, " \t") {
			words, err := shellwords.Split(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			out = append(out, words...)
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// scriptLines reads a shell script setting given as a list of lines or as
// one string.
func scriptLines(cfg *config.Config, key string) ([]string, error) {
	v, ok := cfg.Raw.Get(key)
	if !ok || v == nil {
		return nil, nil
	}
	if s, ok := v.(string); ok {
		return strings.Split(s, "\n"), nil
	}
	l, err := cfg.Raw.StringList(key)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func envList(name string) ([]string, bool, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, false, nil
	}
	words, err := shellwords.Split(v)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", name, err)
	}
	return words, true, nil
}

// ContainerChoice is the part of the docker settings that decides a
// task's container, shared by docker mode and the Kubernetes executor.
type ContainerChoice struct {
	Defaults  docker.Defaults
	Extra     []string
	Merge     docker.MergeOptions
	Init      docker.InitOptions
	ForcePull bool
}

// ReadContainerChoice reads the image defaults (cli is --docker's values,
// nil when not given), the argument merge rules and the set-up script
// parts (spec 3.9, 6.4).
func ReadContainerChoice(cfg *config.Config, cli []string) (ContainerChoice, error) {
	var cc ContainerChoice
	var firstErr error
	keep := func(err error) {
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	confArgs, err := dockerArgs(cfg, "agent.default_docker.arguments")
	keep(err)
	defaults, err := docker.DefaultsFromCLI(cli, os.Getenv("CLEARML_DOCKER_IMAGE"), cfg.Raw.String("agent.default_docker.image", ""), confArgs)
	keep(err)
	rulesRaw, _ := cfg.Raw.Get("agent.default_docker.match_rules")
	defaults.Rules, err = docker.ParseMatchRules(rulesRaw)
	keep(err)
	defaults.DisableTaskOverride, err = cfg.Raw.Bool("agent.disable_task_docker_override", false)
	keep(err)

	extra, err := dockerArgs(cfg, "agent.extra_docker_arguments")
	keep(err)
	if env, set, err := envList("CLEARML_AGENT_EXTRA_DOCKER_ARGS"); set {
		extra = env
		keep(err)
	}
	merge := docker.MergeOptions{Protected: docker.DefaultProtected, Forbidden: docker.DefaultForbidden}
	merge.ExtraPrecedesTask, err = cfg.Raw.Bool("agent.docker_args_extra_precedes_task", true)
	keep(err)
	if cfg.Raw.Has("agent.protected_docker_extra_args") {
		merge.Protected, err = cfg.Raw.StringList("agent.protected_docker_extra_args")
		keep(err)
	}
	if cfg.Raw.Has("agent.forbidden_docker_args") {
		merge.Forbidden, err = cfg.Raw.StringList("agent.forbidden_docker_args")
		keep(err)
	}
	filters, err := cfg.Raw.StringList("agent.docker_args_filters")
	keep(err)
	if env, set, err := envList("CLEARML_AGENT_DOCKER_ARGS_FILTERS"); set {
		filters = env
		keep(err)
	}
	for _, f := range filters {
		re, err := regexp.Compile(f)
		if err != nil {
			keep(fmt.Errorf("agent.docker_args_filters: invalid regular expression %q: %w", f, err))
			continue
		}
		merge.Filters = append(merge.Filters, re)
	}
	merge.AllowHostEnv, err = cfg.Raw.Bool("agent.docker_allow_host_environ", false)
	keep(err)
	merge.Hardened, err = cfg.Raw.Bool("agent.docker_args_hardened", false)
	keep(err)

	var init docker.InitOptions
	init.Preprocess, err = scriptLines(cfg, "agent.docker_preprocess_bash_script")
	keep(err)
	init.Init, err = scriptLines(cfg, "agent.docker_init_bash_script")
	keep(err)
	init.Extra, err = scriptLines(cfg, "agent.extra_docker_shell_script")
	keep(err)
	init.OpenCVLibs, err = cfg.Raw.Bool("agent.docker_install_opencv_libs", true)
	keep(err)
	forcePull, err := cfg.Raw.Bool("agent.docker_force_pull", false)
	keep(err)

	cc.Defaults, cc.Extra, cc.Merge, cc.Init, cc.ForcePull = defaults, extra, merge, init, forcePull
	return cc, firstErr
}

// NewDockerMode reads the docker settings (spec 3.9 and 6.4) and checks
// them before the daemon takes any task: a bad setting stops the start
// with a clear error instead of failing every task.
func NewDockerMode(cfg *config.Config, o DockerOptions) (*DockerMode, error) {
	bin, err := docker.Find()
	if err != nil {
		return nil, err
	}
	var firstErr error
	keep := func(err error) {
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	cc, err := ReadContainerChoice(cfg, o.CLI)
	keep(err)
	defaults, extra, merge, init, forcePull := cc.Defaults, cc.Extra, cc.Merge, cc.Init, cc.ForcePull
	mounts := docker.DefaultInternalMounts().WithOverrides(func(k string) string {
		return cfg.Raw.String("agent.docker_internal_mounts."+k, "")
	})
	vcsOn, err := cfg.Raw.Bool("agent.vcs_cache.enabled", true)
	keep(err)
	venvsOn, err := cfg.Raw.Bool("agent.venvs_cache.enabled", true)
	keep(err)
	caches, err := containerCaches(cfg, vcsOn, venvsOn)
	keep(err)
	noSSH, err := cfg.Raw.Bool("agent.disable_ssh_mount", false)
	keep(err)
	if v := os.Getenv("CLEARML_AGENT_DISABLE_SSH_MOUNT"); v != "" && v != "0" && !strings.EqualFold(v, "false") {
		noSSH = true
	}
	home, _ := os.UserHomeDir()
	sshDir := ""
	if st, err := os.Stat(filepath.Join(home, ".ssh")); err == nil && st.IsDir() && !noSSH {
		sshDir = filepath.Join(home, ".ssh")
	}
	var gitFiles []docker.Mount
	for _, f := range []string{".git-credentials", ".gitconfig"} {
		if _, err := os.Stat(filepath.Join(home, f)); err == nil {
			gitFiles = append(gitFiles, docker.Mount{Host: filepath.Join(home, f), Container: "/root/" + f, ReadOnly: true})
		}
	}
	hide, err := cfg.Raw.Bool("agent.hide_docker_command_env_vars.enabled", true)
	keep(err)
	hideKeys, err := cfg.Raw.StringList("agent.hide_docker_command_env_vars.extra_keys")
	keep(err)
	labels, _, err := envList("CLEARML_AGENT_EXTRA_DOCKER_LABELS")
	keep(err)
	tree, _ := cfg.Raw.Object("")
	systemSite := os.Getenv("CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES") != "0"
	cleanup, err := cleanupPolicy(cfg)
	keep(err)
	if firstErr != nil {
		return nil, fmt.Errorf("docker mode: %w", firstErr)
	}
	skipGPUs := os.Getenv("CLEARML_DOCKER_SKIP_GPUS_FLAG")
	client := docker.Client{Bin: bin}
	images := docker.NewImageUsage(filepath.Join(CacheBase(), "clearml-agent", "docker-images.json"))
	s := docker.Settings{
		Client: client, Defaults: defaults, Extra: extra, Merge: merge, Init: init, Standalone: o.Standalone,
		ForcePull: forcePull, Mounts: mounts, Caches: caches, SSHAuthSock: os.Getenv("SSH_AUTH_SOCK"), SSHDir: sshDir,
		GitFiles: gitFiles, ConfigTree: tree,
		Conf: docker.ConfOptions{Mounts: mounts, VCSCache: vcsOn, VenvsCache: caches.Venvs != "", OwnerToken: o.OwnerToken,
			SystemSitePackages: systemSite},
		PrepareRepo: prepareRepo(cfg, o.Log),
		GPUs:        docker.GPUs{Visible: o.Visible, HostHasGPUs: hostHasGPUs(), SkipFlag: skipGPUs != "" && skipGPUs != "0"},
		Labels:      labels, NameFormat: cfg.Raw.String("agent.docker_container_name_format", ""),
		Masker:      docker.Masker{Keys: hideKeys, Secrets: cfg.Secrets(), Disabled: !hide},
		HostNetwork: docker.IsLoopbackServer(cfg.API.Server), Self: o.Self, InnerArgv: o.Inner, PassEnv: dockerPassEnv,
		WorkDir: os.TempDir(), ParentWorker: o.WorkerID, Images: images, Exec: o.Exec, Log: o.Log,
	}
	l, err := docker.NewLauncher(s)
	if err != nil {
		return nil, err
	}
	return &DockerMode{Launcher: l, Cleanup: cleanup, Client: client, Images: images, Defaults: defaults}, nil
}

// cleanupPolicy reads agent.docker_cleanup (ours): enabled (true),
// interval_sec (3600), container_max_age_sec (86400), image_max_age_sec
// (0: keep images), min_free_disk_gb (0: no check).
func cleanupPolicy(cfg *config.Config) (docker.CleanupPolicy, error) {
	var p docker.CleanupPolicy
	var err error
	const base = "agent.docker_cleanup."
	if p.Enabled, err = cfg.Raw.Bool(base+"enabled", true); err != nil {
		return p, err
	}
	for _, f := range []struct {
		dst *time.Duration
		key string
		def float64
	}{{&p.Interval, "interval_sec", 3600}, {&p.ContainerMaxAge, "container_max_age_sec", 86400}, {&p.ImageMaxAge, "image_max_age_sec", 0}} {
		v, err := cfg.Raw.Float(base+f.key, f.def)
		if err != nil {
			return p, err
		}
		if v < 0 {
			return p, fmt.Errorf("%s%s must not be negative", base, f.key)
		}
		*f.dst = time.Duration(v * float64(time.Second))
	}
	gb, err := cfg.Raw.Float(base+"min_free_disk_gb", 0)
	if err != nil {
		return p, err
	}
	if gb < 0 {
		return p, fmt.Errorf("%smin_free_disk_gb must not be negative", base)
	}
	p.MinFreeBytes = uint64(gb * (1 << 30))
	return p, nil
}

// hostHasGPUs: NVIDIA GPUs are visible on this host.
func hostHasGPUs() bool {
	if _, err := os.Stat("/dev/nvidia0"); err == nil {
		return true
	}
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		return true
	}
	return false
}

// containerCaches reads agent.docker_cache_isolation (ours): "task" (the
// default) gives each container caches of its own, which go with it;
// "shared" mounts folders that every container of the agent shares and
// that the host never uses: agent.docker_pip_cache, agent.docker_apt_cache,
// agent.docker_venvs_cache and agent.docker_sdk_cache (ours). Either way
// the host's git mirror of a task's repository is mounted read-only.
func containerCaches(cfg *config.Config, vcsOn, venvsOn bool) (docker.HostCaches, error) {
	var c docker.HostCaches
	if vcsOn {
		c.VCS = config.ExpandHome(cfg.Raw.String("agent.vcs_cache.path", "~/.clearml/vcs-cache"))
	}
	switch mode := cfg.Raw.String("agent.docker_cache_isolation", "task"); mode {
	case "task":
	case "shared":
		c.Shared = true
		c.Pip = config.ExpandHome(cfg.Raw.String("agent.docker_pip_cache", "~/.clearml/pip-cache"))
		c.Apt = config.ExpandHome(cfg.Raw.String("agent.docker_apt_cache", "~/.clearml/apt-cache"))
		c.SDK = config.ExpandHome(cfg.Raw.String("agent.docker_sdk_cache", "~/.clearml/docker-cache/sdk"))
		if venvsOn {
			c.Venvs = config.ExpandHome(cfg.Raw.String("agent.docker_venvs_cache", "~/.clearml/docker-cache/venvs"))
		}
		host := config.ExpandHome(cfg.Raw.String("agent.venvs_cache.path", "~/.clearml/venvs-cache"))
		if c.Venvs != "" && filepath.Clean(c.Venvs) == filepath.Clean(host) {
			return c, fmt.Errorf("agent.docker_venvs_cache must not be the host's venv cache (%s): containers could write what the host imports", host)
		}
	default:
		return c, fmt.Errorf("agent.docker_cache_isolation: %q is not task or shared", mode)
	}
	return c, nil
}

// prepareRepo is docker.Settings.PrepareRepo: the host fetches the task's
// revision into its mirror cache, which the container then sees read-only.
func prepareRepo(cfg *config.Config, log *slog.Logger) func(context.Context, map[string]any, func(string, string)) (string, error) {
	return func(ctx context.Context, script map[string]any, logf func(string, string)) (string, error) {
		str := func(k string) string { s, _ := script[k].(string); return strings.TrimSpace(s) }
		var out bytes.Buffer
		o := GitOptions(cfg, &out, log)
		dir, err := vcs.Prefetch(ctx, o, vcs.Source{Repository: str("repository"), Branch: str("branch"), Tag: str("tag"), Commit: str("version_num")})
		if text := strings.TrimSpace(out.String()); text != "" {
			logf("INFO", text)
		}
		return dir, err
	}
}

// CacheBase is this user's cache folder (or the temp folder when there is
// none), where the agent keeps its state: runs, images, GPU claims.
func CacheBase() string {
	base, err := os.UserCacheDir()
	if err != nil {
		return os.TempDir()
	}
	return base
}
