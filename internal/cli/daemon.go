package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/gpu"
	"github.com/goclearml/agent/internal/redact"
	"github.com/goclearml/agent/internal/taskprep"
	"github.com/goclearml/agent/internal/version"
)

// checkModes applies the rules between the parallel modes (spec 1.2):
// services mode is CPU only; dynamic GPUs need --gpus as a list or range
// and name=spec queues, and do not combine with services mode.
func checkModes(d *args.Daemon) error {
	services := d.ServicesMode != nil && *d.ServicesMode != 0
	if services && d.DynamicGPUs {
		return &UsageError{Msg: "daemon: Combining --dynamic-gpus and --services-mode is not supported"}
	}
	if services {
		d.CPUOnly, d.GPUs = true, ""
	}
	if d.GPUs != "" && !d.DynamicGPUs {
		if err := gpu.CheckVisible(d.GPUs); err != nil {
			return &UsageError{Msg: "daemon: " + err.Error()}
		}
	}
	if d.DynamicGPUs {
		if _, err := gpu.ParseDevices(d.GPUs); err != nil {
			return &UsageError{Msg: "daemon: " + err.Error()}
		}
		if d.Stop == nil {
			if _, err := gpu.ParseQueueSpecs(d.Queues); err != nil {
				return &UsageError{Msg: "daemon: " + err.Error()}
			}
		}
	}
	return nil
}

func runDaemon(g args.Global, argv []string, stdout, stderr io.Writer) error {
	d, err := args.ParseDaemon(argv)
	if err != nil {
		return &UsageError{Msg: "daemon: error: " + err.Error()}
	}
	if d.Help {
		fmt.Fprint(stdout, args.DaemonUsage())
		return errHelp
	}
	if err := checkModes(d); err != nil {
		return err
	}
	if d.GitPass != "" {
		// Keep our copy, then blank it where `ps` reads the command line.
		d.GitPass = strings.Clone(d.GitPass)
		hideArgValue(os.Args, "--git-pass")
	}
	level := cmp.Or(d.LogLevel, "INFO")
	if g.Debug {
		level = "DEBUG"
	}
	detachedLog := os.Getenv(detachedChildEnv)
	if d.Detached && !d.Foreground && detachedLog == "" && d.Stop == nil {
		f, err := os.CreateTemp("", ".clearml_agent_daemon_out*.txt")
		if err != nil {
			return fmt.Errorf("creating daemon log file: %w", err)
		}
		f.Close()
		pid, err := detach(f.Name(), d.GitPass)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Running CLEARML-AGENT daemon in background mode (pid %d), writing stdout/stderr to %s\n", pid, f.Name())
		return nil
	}
	out, console, closeOut, err := daemonOutput(d, detachedLog != "", stdout, stderr)
	if err != nil {
		return err
	}
	defer closeOut()
	log, err := newLogger(g, out, level)
	if err != nil {
		return err
	}
	// Signals are ours from here on (a stop during start-up must not kill
	// the daemon half-way); handleSignals reads them once the daemon runs.
	sigs := make(chan os.Signal, 4)
	if d.Stop == nil && !d.Status {
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
	}
	if d.Stop == nil {
		plan, err := planEmbedded(g)
		if err != nil {
			return err
		}
		if plan != nil {
			slog, err := newLogger(g, out, "WARNING") // the server's own log: problems only
			if err != nil {
				return err
			}
			emb, err := startEmbedded(plan, slog, func(msg string) { log.Info(msg) })
			if err != nil {
				return err
			}
			defer emb.stop()
		}
	}
	if d.Uptime != nil && len(*d.Uptime) > 0 && d.Downtime != nil && len(*d.Downtime) > 0 {
		return &UsageError{Msg: "daemon: both --uptime and --downtime were given: use one of them"}
	}
	var cfg *config.Config
	if d.Stop != nil {
		// Stopping a local daemon needs no server.
		cfg, err = config.Load(config.LoadOptions{ConfigFile: g.ConfigFile})
	} else {
		cfg, err = loadConfig(g)
	}
	if err != nil {
		return err
	}
	childEnv, visible, visibleSet := taskDevices(d, cfg.Agent.CPUOnly, os.Environ())
	if d.Stop != nil {
		return stopDaemons(g, d, cfg.Agent.WorkerName, cfg.Agent.WorkerID, visible, visibleSet, stdout)
	}
	sched, err := daemonSchedule(d, cfg)
	if err != nil {
		return &UsageError{Msg: "daemon: " + err.Error() + " (--uptime/--downtime or agent.uptime/agent.downtime)"}
	}
	inst, err := agent.Register(agent.IdentityOptions{WorkerID: cfg.Agent.WorkerID, WorkerName: cfg.Agent.WorkerName,
		VisibleGPUs: visible, VisibleGPUsSet: visibleSet, DynamicGPUs: d.DynamicGPUs, Signature: daemonSignature(g, d)})
	if err != nil {
		return err
	}
	defer inst.Release()
	for _, w := range inst.Warnings {
		log.Warn(w)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := newAPIClient(cfg, log)
	if err != nil {
		return err
	}
	if d.Status {
		err = client.LoginWith(ctx, cliLogin)
		if err != nil {
			err = reachError(g, cfg.API.Server, err)
		}
	} else {
		// Until the signal handler below runs, SIGINT/SIGTERM end the wait.
		lctx, lstop := untilSignal(ctx, sigs)
		err = daemonLogin(lctx, g, client, cfg.API.Server, log)
		lstop()
		if err != nil && lctx.Err() != nil && ctx.Err() == nil {
			log.Info("stopped by a signal while waiting for the server", "server", cfg.API.Server)
			return nil
		}
	}
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable: %w", err)
	}
	childArgv := executeArgv(self, g.ConfigFile, g.Debug, level, d)
	lostAfter := cfg.Agent.ReattachTimeout
	ex := &executor.Executor{Log: log, Self: self, LostAfter: lostAfter}
	var dm *taskprep.DockerMode
	if d.Docker != nil {
		// Inside the container the configuration is the one the docker
		// mode writes there, at its default place.
		inner := executeArgv(docker.AgentBinary, "", g.Debug, level, d)
		dm, err = taskprep.NewDockerMode(cfg, taskprep.DockerOptions{CLI: *d.Docker, Standalone: d.StandaloneMode,
			OwnerToken: d.UseOwnerToken, WorkerID: inst.WorkerID, Visible: visible, Self: self, Inner: inner, Exec: ex, Log: log})
		if err != nil {
			return err
		}
		mode := "Docker"
		if d.StandaloneMode {
			mode = "Docker standalone"
		}
		log.Info(fmt.Sprintf("Running in %s mode (v19.03 and above) - using default docker image: %s %s", mode,
			dm.Defaults.Image, strings.Join(dm.Defaults.Arguments, " ")))
	}
	// --git-user/--git-pass (which upstream parses and ignores) reach the
	// task's execute through its environment, never its command line.
	if d.GitUser != "" {
		childEnv = append(childEnv, "CLEARML_AGENT_GIT_USER="+d.GitUser)
	}
	if d.GitPass != "" {
		childEnv = append(childEnv, "CLEARML_AGENT_GIT_PASS="+d.GitPass)
	}
	// Task logs a crashed daemon left are delivered by the agent at start,
	// after it read where the tasks it takes back continue.
	spool := spoolDir(inst.WorkerID)
	pollInterval := cfg.Agent.PollInterval
	if d.PollingIntervalSet {
		pollInterval = time.Duration(d.PollingInterval * float64(time.Second))
	}
	m, closeMetrics, err := startMetrics(cfg, pollInterval, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	// Secrets masked in task logs and on the console: the configuration's,
	// --git-pass, and the values of secret-named variables (*_TOKEN,
	// *_KEY, *_SECRET, *_PASSWORD, ...) the tasks inherit.
	taskSecrets := func(c *config.Config) []string {
		return redact.Sorted(append(appendNonEmpty(c.Secrets(), d.GitPass), redact.EnvSecrets(childEnv)...))
	}
	secrets := taskSecrets(cfg)
	if console != nil {
		mw := redact.NewWriter(console, secrets)
		defer mw.Close()
		console = mw
	}
	hooks := venvHooks()
	if dm != nil {
		var stopCleanup func()
		hooks, stopCleanup = dockerHooks(ctx, dm, log)
		defer stopCleanup()
	}
	hostname, _ := os.Hostname()
	par, queues, err := parallelMode(cfg, d, inst)
	if err != nil {
		return err
	}
	a := agent.New(agent.Config{
		Queues: queues, CreateQueue: d.CreateQueue, OrderFairness: d.OrderFairness, Parallel: par,
		PollInterval: pollInterval, TaskPingInterval: cfg.Agent.TaskPingInterval,
		StatusReportInterval: cfg.Agent.StatusReportInterval, GracePeriod: cfg.Agent.AbortGracePeriod,
		WorkerID: inst.WorkerID, Hostname: hostname, Tags: d.ChildReportTags,
		ChildArgv: childArgv, ChildEnv: childEnv, SpoolDir: spool, Secrets: secrets,
		SuppressCarriageReturn: cfg.Agent.SuppressCarriageReturn, Console: console,
		Metrics: m, Schedule: sched, UseOwnerToken: d.UseOwnerToken,
		AfterTask: hooks.afterTask, Launcher: hooks.launcher, RunsDir: runsDir(inst.WorkerID), Leftovers: hooks.leftovers,
		LostCommand: lostCommand(self, g, childEnv),
	}, client, ex, machineSampler(cfg, visible, par), log)

	if d.Status {
		report, err := a.StatusReport(ctx)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, report)
		fmt.Fprint(stdout, runningReport(ctx, client))
		return nil // upstream exits 1 even on success (spec 7.1); we do not
	}
	reload := func() { reloadConfig(g, d, pollInterval, taskSecrets, a, log) }
	var wg sync.WaitGroup
	stopSignals := make(chan struct{})
	wg.Go(func() { handleSignals(sigs, stopSignals, a, cancel, reload, inst.MarkDraining, log) })
	defer func() { close(stopSignals); wg.Wait() }()

	log.Info("clearml-agent daemon started", "version", version.Version, "worker", inst.WorkerID, "server", cfg.API.Server)
	started := time.Now()
	// A task's supervisor is started ahead of the task (executor/spare.go).
	ex.KeepSpare()
	defer ex.Close()
	err = a.Run(ctx)
	if err != nil {
		log.Error("clearml-agent daemon stopped", "worker", inst.WorkerID, "err", err, "uptime", time.Since(started).Round(time.Second).String())
		return err
	}
	log.Info("clearml-agent daemon stopped", "worker", inst.WorkerID, "uptime", time.Since(started).Round(time.Second).String())
	return nil
}

var unsafePath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^A-Za-z0-9._-]+`) })

// runsDir is where a worker keeps the records and output of its running
// tasks, which a restarted daemon with the same id takes back.
func runsDir(workerID string) string {
	return filepath.Join(taskprep.CacheBase(), "clearml-agent", "runs", unsafePath().ReplaceAllString(workerID, "_"))
}

// spoolDir is where a worker's undelivered task logs wait.
func spoolDir(workerID string) string {
	return filepath.Join(taskprep.CacheBase(), "clearml-agent", "spool", unsafePath().ReplaceAllString(workerID, "_"))
}

func homeDir() string {
	h, _ := os.UserHomeDir()
	return h
}

// loadConfig loads clearml.conf and the environment.
func loadConfig(g args.Global) (*config.Config, error) {
	plan, err := planEmbedded(g)
	if err != nil {
		return nil, err
	}
	opts := config.LoadOptions{ConfigFile: g.ConfigFile}
	if plan != nil {
		opts.BaseFile = plan.baseConf()
	}
	cfg, err := config.Load(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newClient builds the API client and logs in.
func newClient(ctx context.Context, cfg *config.Config, log *slog.Logger) (*apiclient.Client, error) {
	client, err := newAPIClient(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := retryLogin(ctx, client); err != nil {
		return nil, err
	}
	return client, nil
}

// newAPIClient builds the API client of a configuration (no call yet).
func newAPIClient(cfg *config.Config, log *slog.Logger) (*apiclient.Client, error) {
	host, _ := os.Hostname()
	return apiclient.New(apiclient.Config{Server: cfg.API.Server, AccessKey: cfg.API.AccessKey, SecretKey: cfg.API.SecretKey,
		Token: cfg.API.AuthToken, WorkerName: host, UserAgent: "api-" + version.Version, Logger: log,
		RefreshThreshold: cfg.API.TokenExpirationThreshold})
}

func appendNonEmpty(list []string, vs ...string) []string {
	for _, v := range vs {
		if v != "" {
			list = append(list, v)
		}
	}
	return list
}
