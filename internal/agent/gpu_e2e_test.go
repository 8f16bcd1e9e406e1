package agent_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// TestDaemonGPUTask runs a task with --gpus 0 on a machine with an NVIDIA
// GPU: the worker id carries the GPU, the task sees only that device, and
// nvidia-smi works inside it. It skips where there is no NVIDIA driver.
func TestDaemonGPUTask(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("nvidia-smi not found: no NVIDIA GPU on this machine")
	}
	e := newEnv(t)
	d := e.daemon("--queue", "default", "--gpus", "0")
	ctx := context.Background()
	var created api.IDResponse
	script := "echo CUDA=$CUDA_VISIBLE_DEVICES NVIDIA=$NVIDIA_VISIBLE_DEVICES WORKER=$CLEARML_WORKER_ID\nnvidia-smi -L\n"
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "gpu task", "type": "training",
		"script": map[string]any{"binary": "bash", "entry_point": "gpu.sh", "diff": script}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	done := e.waitStatus(created.ID, 60*time.Second, "completed", "failed", "stopped")
	log := strings.Join(e.logLines(created.ID), "\n")
	t.Logf("task log:\n%s", log)
	if done.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", done.Status, done.StatusReason, d.Output())
	}
	if !strings.Contains(log, "CUDA=0 NVIDIA=0 WORKER=e2ehost:gpu0") || !strings.Contains(log, "GPU 0:") {
		t.Fatalf("the task did not run on GPU 0 as worker e2ehost:gpu0")
	}
}
