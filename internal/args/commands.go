package args

// Global holds the options that come before the sub-command.
type Global struct {
	ConfigFile string // --config-file, verbatim; the caller expands ~ and $VAR
	Debug      bool   // --debug, -d
	LogFormat  string // --log-format (ours): human, logfmt or json
	Version    bool   // --version; parsing stopped there
	Help       bool   // -h or --help; parsing stopped there
}

// ParseCommandLine splits a command line (without the program name) into
// the global options, the sub-command name and the sub-command's arguments,
// as upstream's top-level argparse parser does: global options must come
// before the sub-command, and everything after it is left in rest for
// ParseDaemon or ParseExecute. @file arguments are expanded everywhere, as
// argparse expands them before parsing.
//
// --version and -h/--help stop parsing where they appear (argparse prints and
// exits there); cmd is then empty. Without a sub-command cmd is empty and err
// nil: upstream prints the help then. The command name is not checked.
func ParseCommandLine(argv []string) (g Global, cmd string, rest []string, err error) {
	return parseCommandLine(argv, osReadFile)
}

func parseCommandLine(argv []string, read func(string) ([]byte, error)) (g Global, cmd string, rest []string, err error) {
	p := newParser(globalOptions(&g), read)
	args, err := expandArgFiles(argv, read, 0)
	if err != nil {
		return Global{}, "", nil, err
	}
	res, toks, err := p.run(args, true)
	if err != nil {
		return Global{}, "", nil, err
	}
	if res.exited {
		return g, "", nil, nil
	}
	if len(res.extras) > 0 {
		return Global{}, "", nil, unrecognized(res.extras)
	}
	if res.stop < 0 {
		return g, "", nil, nil
	}
	i := res.stop
	if toks[i].kind == '-' { // "--" ends the global options
		i++
		if i == len(args) {
			return g, "", nil, nil
		}
	}
	return g, args[i], append([]string{}, args[i+1:]...), nil
}

// globalOptions is upstream's top-level table in registration order.
func globalOptions(g *Global) []*option {
	h := flagOpt(&g.Help, "show a summary of the commands", "-h")
	help := flagOpt(&g.Help, "show detailed help", "--help")
	version := flagOpt(&g.Version, "print the agent version", "--version")
	h.exits, help.exits, version.exits = true, true, true
	return []*option{
		h, help, version,
		strOpt(&g.ConfigFile, "config_file", "configuration file to use instead of ~/clearml.conf", "--config-file"),
		flagOpt(&g.Debug, "print debug information", "--debug", "-d"),
		strOpt(&g.LogFormat, "log_format", "the agent's own log lines: human (default), logfmt or json", "--log-format"),
	}
}

// Execute is the parsed "clearml-agent execute" command line: run one task.
// The daemon starts it as "execute --disable-monitoring --id <task>" (or
// --full-monitoring in services mode and for dynamic-GPU children).
type Execute struct {
	ID                string // --id (required)
	Clone             bool   // run a clone of the task
	LogLevel          string // upper-cased, one of LogLevels; INFO by default
	Optimization      int    // -O count
	StandaloneMode    bool
	DisableMonitoring bool
	FullMonitoring    bool
	GitUser           string
	GitPass           string
	Docker            *[]string // as Daemon.Docker
	RequireQueue      bool      // fail unless the task was queued
	LogFile           string    // copy the task's stdout/stderr to this file
	GPUs              string
	CPUOnly           bool
	Help              bool // -h/--help was given; other fields are partly filled
}

// ParseExecute parses the arguments after "execute". With -h/--help it
// returns an Execute with Help set and does not require --id. Errors are
// *Error.
func ParseExecute(args []string) (*Execute, error) {
	return parseExecute(args, osReadFile)
}

func parseExecute(args []string, read func(string) ([]byte, error)) (*Execute, error) {
	e := &Execute{LogLevel: DefaultLogLevel}
	p := newParser(executeOptions(e), read)
	if _, err := p.parseAll(args); err != nil {
		return nil, err
	}
	return e, nil
}

// ExecuteUsage is the help text of "clearml-agent execute".
func ExecuteUsage() string {
	return formatHelp("clearml-agent execute", "Set up and run one task.",
		`Docker arguments may follow the image, as for "clearml-agent daemon --docker".`,
		executeOptions(&Execute{}))
}

// executeOptions is upstream's "execute" table in registration order.
func executeOptions(e *Execute) []*option {
	plain, docker := workerOptions(workerFields{
		optimization: &e.Optimization, gitUser: &e.GitUser, gitPass: &e.GitPass,
		logLevel: &e.LogLevel, gpus: &e.GPUs, cpuOnly: &e.CPUOnly,
		gpusHelp: "GPUs the task may use, as in NVIDIA_VISIBLE_DEVICES: 0, 0,1,2, 0:1 (MIG) or all",
		cpusHelp: "run the task without GPU access",
	})
	id := strOpt(&e.ID, "task_id", "id of the task to run", "--id")
	id.required = true
	opts := []*option{
		helpOpt(&e.Help),
		id,
		strOpt(&e.LogFile, "log_file", "also write the task's stdout and stderr to this file", "--log-file"),
		flagOpt(&e.DisableMonitoring, "no log streaming or status reports (the output stays on stdout)",
			"--disable-monitoring"),
		flagOpt(&e.FullMonitoring, "stream the setup and task logs and report status, like a one-task daemon",
			"--full-monitoring"),
		flagOpt(&e.RequireQueue, "fail unless the task is queued (for external schedulers such as Kubernetes or SLURM)",
			"--require-queue"),
		flagOpt(&e.StandaloneMode, "assume everything is installed and use no network for setup", "--standalone-mode"),
		dockerOpt(&e.Docker, "run the task in a docker container; optional IMAGE and docker arguments"),
		flagOpt(&e.Clone, "clone the task and run the clone", "--clone"),
	}
	opts = append(opts, plain...)
	return append(opts, docker...)
}
