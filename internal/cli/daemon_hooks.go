package cli

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/taskprep"
)

// taskHooks is what the daemon's mode adds around each task: how it is
// launched (nil: the executor's own way, in a virtual environment), what
// follows its end, and what is done with what is left of a run that was
// not taken back.
type taskHooks struct {
	launcher  agent.Launcher
	afterTask func(taskID string)
	leftovers func(ctx context.Context, marker string)
}

// venvHooks: a task's preparation folder goes once it ends.
func venvHooks() taskHooks {
	return taskHooks{afterTask: func(id string) { os.RemoveAll(taskprep.Dir(id)) }}
}

// dockerHooks: tasks run in containers; the end of one wakes the cleanup
// of containers and images, which runs until stop (which waits for it);
// a run not taken back loses its container.
func dockerHooks(ctx context.Context, dm *taskprep.DockerMode, log *slog.Logger) (h taskHooks, stop func()) {
	kick := make(chan struct{}, 1)
	h = taskHooks{
		launcher: dm.Launcher,
		afterTask: func(string) {
			select {
			case kick <- struct{}{}:
			default:
			}
		},
		leftovers: func(ctx context.Context, marker string) {
			if ids, err := dm.Client.Containers(ctx, docker.LabelRun+"="+marker); err == nil && len(ids) > 0 {
				log.Info("removing the container of a task that was not taken back", "containers", len(ids))
				dm.Client.Remove(ctx, ids...)
			}
		},
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { dm.Cleanup.Loop(cctx, dm.Client, dm.Images, kick, log) })
	return h, func() { cancel(); wg.Wait() }
}
