package args

import (
	"fmt"
	"strings"
)

// Daemon is the parsed "clearml-agent daemon" command line. Pointer and nil
// fields distinguish "not given" from "given bare", as upstream's defaults
// (None/False versus []) do.
type Daemon struct {
	Queues        []string // --queue Q [Q ...]; a repeat replaces; nil: server default queue
	OrderFairness bool
	// PollingInterval is in seconds: 5 unless given; given values below
	// MinPollingInterval are raised to it (upstream raises them to 5).
	PollingInterval    float64
	PollingIntervalSet bool
	Foreground         bool
	Detached           bool // --detached, -d
	// Docker is nil when not given, empty for a bare --docker, else the
	// image (possibly "IMAGE ARGS..." in one string) and docker arguments.
	Docker              *[]string
	ForceCurrentVersion bool
	StandaloneMode      bool
	// ServicesMode is nil when off, -1 for the bare flag (unlimited), else
	// the value given; 0 is kept and means off to the daemon.
	ServicesMode    *int
	ChildReportTags []string
	CreateQueue     bool
	Stop            *[]string // nil: not given; empty: bare --stop; else worker ids
	DynamicGPUs     bool
	Uptime          *[]string // nil: not given; each element is one "<hours> <days>" spec
	Downtime        *[]string
	Status          bool
	UseOwnerToken   bool
	Optimization    int    // -O count
	GitUser         string // --git-user (upstream parses it and never reads it)
	GitPass         string
	LogLevel        string // upper-cased, one of LogLevels; INFO by default
	GPUs            string // verbatim: "0,1", "all", "0:1", "0-3"
	CPUOnly         bool
	Help            bool // -h/--help was given; other fields are partly filled
}

// Defaults that upstream's argparse table sets.
const (
	DefaultPollingInterval = 5.0
	MinPollingInterval     = 0.5
	DefaultLogLevel        = "INFO"
)

func newDaemon() *Daemon {
	return &Daemon{PollingInterval: DefaultPollingInterval, LogLevel: DefaultLogLevel}
}

// ParseDaemon parses the arguments after "daemon". With -h/--help it
// returns a Daemon with Help set and stops, as argparse prints help and
// exits at that point. Errors are *Error.
func ParseDaemon(args []string) (*Daemon, error) {
	return parseDaemon(args, osReadFile)
}

func parseDaemon(args []string, read func(string) ([]byte, error)) (*Daemon, error) {
	d := newDaemon()
	p := newParser(daemonOptions(d), read)
	if _, err := p.parseAll(args); err != nil {
		return nil, err
	}
	return d, nil
}

// DaemonUsage is the help text of "clearml-agent daemon".
func DaemonUsage() string {
	return formatHelp("clearml-agent daemon",
		"Start a worker that pulls tasks from queues and runs them.",
		daemonEpilog, daemonOptions(newDaemon()))
}

const daemonEpilog = `
Docker arguments may follow the image: --docker nvidia/cuda:11.8.0-runtime-ubuntu22.04 -e K=V --ipc=host.
They end at the next daemon option (such as --queue or --gpus). To pass a docker option that is also a
daemon option, put it after "--" at the end of the line (--docker IMAGE -- --gpus all) or quote the
image and its arguments as one string.

Arguments can be read from a file, one per line: clearml-agent daemon @args.txt.`

// daemonOptions is upstream's DAEMON_ARGS table in registration order:
// ungrouped options first, then the "Docker support" group.
func daemonOptions(d *Daemon) []*option {
	plain, docker := workerOptions(workerFields{
		optimization: &d.Optimization, gitUser: &d.GitUser, gitPass: &d.GitPass,
		logLevel: &d.LogLevel, gpus: &d.GPUs, cpuOnly: &d.CPUOnly,
		gpusHelp: "GPUs the daemon may use, as in NVIDIA_VISIBLE_DEVICES: --gpus 0, --gpus 0,1,2, --gpus 0:1 (MIG), " +
			"--gpus all; with --dynamic-gpus a range such as 0-3",
		cpusHelp: "run tasks without GPU access, in docker or in a virtual environment",
	})
	opts := []*option{
		helpOpt(&d.Help),
		{
			names: []string{"--polling-interval"}, arity: oneArg, dest: "polling_interval",
			help: "seconds between queue polls (default 5, minimum 0.5; fractions allowed)",
			set: func(v []string) error {
				f, err := pyFloat(v[0])
				if err != nil {
					return err
				}
				if f < 0 {
					return fmt.Errorf("%s is negative: give the seconds between polls (%g or more)", strings.TrimSpace(v[0]), MinPollingInterval)
				}
				d.PollingInterval, d.PollingIntervalSet = max(f, MinPollingInterval), true
				return nil
			},
		},
		flagOpt(&d.Foreground, "keep the daemon and task output on the console instead of a temporary log file", "--foreground"),
		listOpt(&d.Queues, "queues", "queue names or ids to pull tasks from; the first listed has the highest priority "+
			"(default: the server's default queue)", "--queue"),
		flagOpt(&d.OrderFairness, "pull from the queues round-robin instead of in priority order", "--order-fairness"),
		flagOpt(&d.StandaloneMode, "assume everything is installed and use no network for setup", "--standalone-mode"),
		{
			names: []string{"--services-mode"}, arity: optionalArg, dest: "services_mode",
			help: "run several long-lived tasks at once, CPU only; N caps how many (default unlimited)",
			set: func(v []string) error {
				n := -1
				if v != nil {
					var err error
					if n, err = pyInt(v[0]); err != nil {
						return err
					}
					if n < 0 {
						return fmt.Errorf("%s is negative: give the most tasks to run at once, or no value for no limit", strings.TrimSpace(v[0]))
					}
				}
				d.ServicesMode = &n
				return nil
			},
		},
		listOpt(&d.ChildReportTags, "child_report_tags", "tags sent in the status reports of the worker running a task",
			"--child-report-tags"),
		flagOpt(&d.CreateQueue, "create the queues that do not exist", "--create-queue"),
		flagOpt(&d.Detached, "run the daemon in the background", "--detached", "-d"),
		optListOpt(&d.Stop, "stop", "stop a running daemon started with the same arguments, or the local workers with "+
			"the given ids", "--stop"),
		flagOpt(&d.DynamicGPUs, "share the --gpus among queues given as --queue name=GPUS (for example "+
			"--dynamic-gpus --gpus 0-3 --queue dual=2 single=1)", "--dynamic-gpus"),
		optListOpt(&d.Uptime, "uptime", `hours the daemon works, one quoted "<hours> <days>" spec each, such as `+
			`"17-20 TUE"; do not combine with --downtime`, "--uptime"),
		optListOpt(&d.Downtime, "downtime", `hours the daemon pauses, one quoted "<hours> <days>" spec each, such as `+
			`"09-13 TUE"; do not combine with --uptime`, "--downtime"),
		flagOpt(&d.Status, "print the worker's schedule and queues, then exit", "--status"),
		flagOpt(&d.UseOwnerToken, "run each task with its owner's credentials (ClearML Enterprise)", "--use-owner-token"),
	}
	opts = append(opts, plain...)
	opts = append(opts,
		dockerOpt(&d.Docker, "run tasks in docker containers; optional IMAGE and docker arguments, otherwise "+
			"agent.default_docker.image and agent.default_docker.arguments"),
		flagOpt(&d.ForceCurrentVersion, "always on: containers run this very agent binary, mounted read-only, so no agent "+
			"version is installed in them", "--force-current-version"),
	)
	for _, o := range opts[len(opts)-2:] {
		o.group = dockerGroup
	}
	return append(opts, docker...)
}
