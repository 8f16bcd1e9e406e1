package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/executor"
	"github.com/goclearml/agent/internal/taskprep"
)

// taskLostCommand is the hidden sub-command a task's supervisor runs when
// it stopped the task because no daemon followed it within
// agent.reattach_timeout_sec:
//
//	clearml-agent [--config-file F] task-lost --id TASK [--container-label K=V]
//
// It removes the task's folder (and, in docker mode, its container), then
// reports the task failed with reason "agent lost", unless its status was
// decided meanwhile. Without it the task stayed in_progress until the
// server's watchdog, hours later.
const taskLostCommand = "task-lost"

// lostCommand returns agent.Config.LostCommand: the task-lost command line,
// with the daemon's global options, in the daemon's environment for tasks.
func lostCommand(self string, g args.Global, env []string) func(taskID, marker string, inDocker bool) *executor.Command {
	return func(taskID, marker string, inDocker bool) *executor.Command {
		a := []string{self}
		if g.ConfigFile != "" {
			a = append(a, "--config-file", g.ConfigFile)
		}
		if g.Debug {
			a = append(a, "--debug")
		}
		a = append(a, taskLostCommand, "--id", taskID)
		if inDocker {
			a = append(a, "--container-label", docker.LabelRun+"="+marker)
		}
		return &executor.Command{Argv: a, Env: env}
	}
}

// lostReportTimeout bounds the report (the server may be down: the login
// retries within it). The supervisor waits a little longer.
const lostReportTimeout = 100 * time.Second

func runTaskLost(g args.Global, argv []string, stdout io.Writer) error {
	var id, label string
	for i := 0; i < len(argv); i++ {
		switch {
		case argv[i] == "--id" && i+1 < len(argv):
			id, i = argv[i+1], i+1
		case argv[i] == "--container-label" && i+1 < len(argv):
			label, i = argv[i+1], i+1
		default:
			return &UsageError{Msg: fmt.Sprintf("%s: unexpected argument %q", taskLostCommand, argv[i])}
		}
	}
	if id == "" {
		return &UsageError{Msg: taskLostCommand + ": --id is required"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), lostReportTimeout)
	defer cancel()
	var errs []error
	if err := os.RemoveAll(taskprep.Dir(id)); err != nil {
		errs = append(errs, fmt.Errorf("removing the task's folder: %w", err))
	}
	if label != "" {
		if bin, err := docker.Find(); err != nil {
			errs = append(errs, err)
		} else if ids, err := (docker.Client{Bin: bin}).Containers(ctx, label); err != nil {
			errs = append(errs, fmt.Errorf("finding the task's container: %w", err))
		} else if len(ids) > 0 {
			if err := (docker.Client{Bin: bin}).Remove(ctx, ids...); err != nil {
				errs = append(errs, fmt.Errorf("removing the task's container: %w", err))
			}
		}
	}
	if err := reportLost(ctx, g, id); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s %s: %w", taskLostCommand, id, err)
	}
	fmt.Fprintf(stdout, "task %s reported lost\n", id)
	return nil
}

// reportLost fails an in-progress task with reason "agent lost" and says
// why in its log.
func reportLost(ctx context.Context, g args.Global, id string) error {
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	log, err := newLogger(g, os.Stderr, "WARNING")
	if err != nil {
		return err
	}
	client, err := newClient(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("reaching the server to report the task lost: %w", err)
	}
	status, _, err := client.TaskStatus(ctx, id)
	if err != nil {
		return fmt.Errorf("reading the task's status: %w", err)
	}
	if status != api.StatusInProgress {
		return nil // decided meanwhile (aborted, reset, taken back and ended)
	}
	host, _ := os.Hostname()
	line, _ := json.Marshal(map[string]any{"type": "log", "task": id, "level": "warning", "worker": host,
		"timestamp": time.Now().UnixMilli(), "msg": fmt.Sprintf("clearml-agent: no agent followed this task for "+
			"agent.reattach_timeout_sec (%s): its supervisor stopped it", cfg.Agent.ReattachTimeout)})
	if _, _, err := client.AddEvents(ctx, [][]byte{line}, apiclient.Default); err != nil {
		log.Warn("writing to the lost task's log", "task", id, "err", err)
	}
	return client.SetStatus(ctx, "tasks.failed", id, false, "agent lost", "Changed by clearml-agent task supervisor", apiclient.Final)
}
