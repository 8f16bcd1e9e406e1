package docker

import (
	"context"
	"fmt"
	"github.com/goclearml/agent/internal/api"
	"log/slog"
	"strings"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/shellwords"
)

// Selection is what the agent's configuration says about a task's
// container, whatever runs it (docker mode, the Kubernetes executor).
type Selection struct {
	Defaults Defaults
	// Extra is agent.extra_docker_arguments (or
	// CLEARML_AGENT_EXTRA_DOCKER_ARGS).
	Extra  []string
	Merge  MergeOptions
	Masker Masker
	Log    *slog.Logger
}

// Prepared is a task's container: the image chosen and the merged docker
// arguments.
type Prepared struct {
	Task   *api.Task
	Choice Choice
	Merged Merged
}

// PrepareTask reads a task's container section and picks its image and
// arguments (spec 3.9): the task's own, else the first matching rule, else
// the default, which is then written back to the task; the agent's and the
// task's arguments are merged by Merge. What it decides goes to the task
// log through logf. An error fails the task before anything runs.
func PrepareTask(ctx context.Context, tapi *apiclient.Client, taskID string, s Selection, logf func(level, msg string)) (Prepared, error) {
	var p Prepared
	task, err := tapi.Task(ctx, taskID)
	if err != nil {
		return p, fmt.Errorf("reading the task: %w", err)
	}
	p.Task = task
	section, err := tapi.TaskContainer(ctx, taskID)
	if err != nil {
		return p, fmt.Errorf("reading the task's container: %w", err)
	}
	legacy := map[string]any{"docker_cmd": section["docker_cmd"]}
	tc, err := TaskContainer(section, legacy)
	if err != nil {
		return p, &ArgError{Msg: err.Error()}
	}
	info := TaskInfo{Container: tc}
	str := func(k string) string { v, _ := task.Script[k].(string); return v }
	info.Repository, info.Branch, info.Binary = str("repository"), str("branch"), str("binary")
	if r, ok := task.Script["requirements"].(map[string]any); ok {
		info.Requirements, _ = r["pip"].(string)
	}
	if len(s.Defaults.Rules) > 0 && task.Project != "" {
		info.Project = projectName(ctx, tapi, task.Project)
	}
	choice, err := Choose(s.Defaults, info)
	if err != nil {
		return p, err
	}
	if choice.Rule != "" {
		logf("INFO", "Matching default container with rule: "+choice.Rule)
	}
	kind := ""
	if choice.UsedDefault {
		kind = "default "
	}
	logf("INFO", fmt.Sprintf("Running Task %s inside %sdocker: %s arguments: %v", taskID, kind, choice.Image, s.Masker.Mask(choice.Arguments)))
	if strings.TrimSpace(choice.SetupScript) != "" {
		logf("INFO", "custom_setup_bash_script:\n"+choice.SetupScript)
	}
	if choice.UsedDefault {
		back := map[string]string{"image": choice.Image, "arguments": shellwords.Join(choice.Arguments), "setup_shell_script": choice.SetupScript}
		if err := tapi.EditContainer(ctx, taskID, back); err != nil && s.Log != nil {
			s.Log.Warn("writing the default container back to the task", "task", taskID, "err", err)
		}
	}
	extra, taskArgs := s.Extra, choice.Arguments
	if choice.UsedDefault {
		// The default's (or a rule's) arguments are the agent's own.
		extra, taskArgs = append(append([]string{}, s.Extra...), choice.Arguments...), nil
	}
	merged, err := Merge(extra, taskArgs, s.Merge)
	if err != nil {
		return p, err
	}
	for _, n := range merged.Notes {
		logf("WARNING", n)
	}
	p.Choice, p.Merged = choice, merged
	return p, nil
}
