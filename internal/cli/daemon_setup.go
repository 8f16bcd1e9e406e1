package cli

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/metrics"
	"github.com/goclearml/agent/internal/schedule"
	"github.com/goclearml/agent/internal/sysstats"
)

// The pieces runDaemon wires together, each decided from the flags and
// the configuration alone.

// daemonOutput says where the daemon's operator log (out) and its tasks'
// output on the console (console, nil for none) go. Without --foreground
// both go to a file, as upstream does; closeOut closes it. detachedChild
// is the background copy of --detached, whose stdout and stderr already
// go to its log file.
func daemonOutput(d *args.Daemon, detachedChild bool, stdout, stderr io.Writer) (out, console io.Writer, closeOut func(), err error) {
	switch {
	case d.Foreground, detachedChild:
		return stderr, stdout, func() {}, nil
	case d.Stop != nil, d.Status:
		return stderr, nil, func() {}, nil
	}
	f, err := os.CreateTemp("", ".clearml_agent_daemon_out*.txt")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating daemon log file: %w", err)
	}
	fmt.Fprintf(stdout, "Running CLEARML-AGENT daemon in background mode, writing stdout/stderr to %s\n", f.Name())
	return f, nil, func() { f.Close() }, nil
}

// taskDevices returns the environment the daemon's tasks inherit (env with
// the GPU variables the flags set) and the devices the daemon reports as
// visible: from --cpu-only (or agent.cpu_only), --gpus, --dynamic-gpus, or
// else the NVIDIA_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES the daemon got.
// visibleSet is false when nothing names them.
func taskDevices(d *args.Daemon, cpuOnly bool, env []string) (childEnv []string, visible string, visibleSet bool) {
	childEnv = env
	visible, visibleSet = lookupEnv(env, "NVIDIA_VISIBLE_DEVICES")
	if !visibleSet {
		visible, visibleSet = lookupEnv(env, "CUDA_VISIBLE_DEVICES")
	}
	switch {
	case d.CPUOnly || cpuOnly:
		visible, visibleSet = "none", true
		childEnv = append(childEnv, "NVIDIA_VISIBLE_DEVICES=none", "CUDA_VISIBLE_DEVICES=none")
	case d.GPUs == "all":
		visible, visibleSet = "all", true
		childEnv = append(filterEnv(childEnv, "CUDA_VISIBLE_DEVICES"), "NVIDIA_VISIBLE_DEVICES=all")
	case d.DynamicGPUs:
		// The daemon's id names its devices (host:dgpu0-3); each task
		// gets its own NVIDIA_VISIBLE_DEVICES.
		visible, visibleSet = d.GPUs, true
	case d.GPUs != "":
		visible, visibleSet = strings.ReplaceAll(d.GPUs, ".", ":"), true
		childEnv = append(childEnv, "NVIDIA_VISIBLE_DEVICES="+visible, "CUDA_VISIBLE_DEVICES="+visible)
	}
	return append(childEnv, "CUDA_DEVICE_ORDER=PCI_BUS_ID"), visible, visibleSet
}

// lookupEnv is os.LookupEnv on an environment list: the first entry of
// the name wins, as it does for a process's own environment.
func lookupEnv(env []string, name string) (string, bool) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func filterEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// executeArgv returns the command line of a task's `execute` child: bin
// (this executable, or the agent's path inside a task's container), then
// the daemon's flags that carry over to it.
func executeArgv(bin, configFile string, debug bool, level string, d *args.Daemon) func(task string) []string {
	return func(task string) []string {
		a := []string{bin}
		if configFile != "" {
			a = append(a, "--config-file", configFile)
		}
		if debug {
			a = append(a, "--debug")
		}
		a = append(a, "execute", "--disable-monitoring", "--log-level", level)
		if d.Optimization > 0 {
			a = append(a, "-"+strings.Repeat("O", d.Optimization))
		}
		if d.StandaloneMode {
			a = append(a, "--standalone-mode") // upstream drops it in venv mode (spec 7.1)
		}
		return append(a, "--id", task)
	}
}

// reloadConfig is the daemon's SIGHUP: clearml.conf is read again and
// what can change while the daemon runs (the schedule, the intervals, the
// secrets masked in logs) applies before its next task. Flags still win
// over the file: pollInterval is the one in force, kept when
// --polling-interval was given. A configuration that does not load keeps
// the current one.
func reloadConfig(g args.Global, d *args.Daemon, pollInterval time.Duration, secrets func(*config.Config) []string, a *agent.Agent, log *slog.Logger) {
	cfg, err := loadConfig(g)
	if err != nil {
		log.Error("reloading configuration failed; keeping the current one", "err", err)
		return
	}
	s, err := daemonSchedule(d, cfg)
	if err != nil {
		log.Error("reloading configuration failed; keeping the current one", "err", err)
		return
	}
	r := agent.Reloadable{Schedule: s, PollInterval: cfg.Agent.PollInterval, TaskPingInterval: cfg.Agent.TaskPingInterval, Secrets: secrets(cfg)}
	if d.PollingIntervalSet {
		r.PollInterval = pollInterval
	}
	a.Reload(r)
	log.Info("configuration read again; it applies before the next task")
}

// daemonSchedule is when the daemon takes tasks: --uptime or --downtime
// where given (even empty), else agent.uptime or agent.downtime.
func daemonSchedule(d *args.Daemon, cfg *config.Config) (schedule.Schedule, error) {
	up, down := cfg.Agent.Uptime, cfg.Agent.Downtime
	if d.Uptime != nil {
		up = append([]string{}, *d.Uptime...)
	}
	if d.Downtime != nil {
		down = append([]string{}, *d.Downtime...)
	}
	return schedule.New(up, down)
}

// startMetrics serves agent.metrics_address, when set: the daemon's
// Prometheus metrics and its health, unhealthy after two missed status
// reports or a poll that has not succeeded for long. close stops it.
func startMetrics(cfg *config.Config, pollInterval time.Duration, log *slog.Logger) (m *metrics.Metrics, close func(), err error) {
	addr := cfg.Agent.MetricsAddress
	if addr == "" {
		return nil, func() {}, nil
	}
	m = metrics.New()
	maxAge := max(2*cfg.Agent.StatusReportInterval+30*time.Second, 3*pollInterval+time.Minute)
	ms, err := metrics.Listen(addr, m, maxAge, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("metrics and health endpoint", "url", "http://"+ms.Addr(), "paths", "/metrics /healthz")
	return m, func() { ms.Close() }, nil
}

// machineSampler reads the machine's statistics for the status reports:
// the disk of agent.disk_use_path (else the home folder) and the devices
// the daemon's tasks may use (those of --dynamic-gpus, else the visible
// ones), through nvidia-smi unless it runs CPU only.
func machineSampler(cfg *config.Config, visible string, par *agent.Parallel) *sysstats.Sampler {
	var gpus sysstats.GPUReader
	if visible != "none" {
		gpus = sysstats.FindNvidiaSMI()
	}
	var devices []string
	switch {
	case par != nil && par.GPUs != nil:
		devices = par.GPUs.Allocator.Devices()
	case visible != "" && visible != "all" && visible != "none":
		devices = strings.Split(strings.ReplaceAll(visible, ":", "."), ",")
	}
	return &sysstats.Sampler{DiskPath: cmp.Or(cfg.Agent.DiskUsePath, homeDir()), GPUs: gpus, Visible: devices}
}
