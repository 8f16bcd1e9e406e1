package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/version"
)

// runConfig prints the effective configuration, secrets masked, as
// upstream's "clearml-agent config" does.
func runConfig(g args.Global, argv []string, stdout io.Writer) error {
	f := newFlags("config", "Usage: clearml-agent config\n\nPrints the effective configuration (files, environment, defaults), secrets masked.\n")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("config: unexpected argument %q", pos[0])}
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, cfg.Printout(version.Version))
	return err
}

// runList lists the daemons running on this host (from their instance
// files) and, with --all, every worker the server knows.
func runList(g args.Global, argv []string, stdout, stderr io.Writer) error {
	f := newFlags("list", "Usage: clearml-agent list [--all]\n\nLists the clearml-agent daemons running on this host: worker id, process id,\n"+
		"queues and GPUs, and the task each one runs (as the server knows it). --all lists\nevery worker the server knows instead.\n")
	all := f.fs.Bool("all", false, "list every worker registered with the server")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("list: unexpected argument %q", pos[0])}
	}
	if *all {
		return runWorkers(g, []string{"list"}, stdout, stderr)
	}
	local := agent.Running("")
	if len(local) == 0 {
		fmt.Fprintln(stdout, "No clearml-agent daemon is running on this host")
		return nil
	}
	sort.Slice(local, func(i, j int) bool { return local[i].WorkerID < local[j].WorkerID })
	tasks := map[string]string{}
	ctx, stop := signalContext()
	defer stop()
	if c, err := connect(ctx, g, stderr); err == nil {
		tasks = workerTasks(ctx, c)
	} else {
		fmt.Fprintf(stderr, "clearml-agent: %v (tasks not shown)\n", err)
	}
	t := &table{header: []string{"WORKER", "PID", "ARGUMENTS", "TASK"}}
	for _, r := range local {
		t.add(r.WorkerID, fmt.Sprint(r.PID), strings.TrimSpace(r.Signature), tasks[r.WorkerID])
	}
	return t.write(stdout)
}
