package agent_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// BenchmarkDockerFirstLine measures enqueue to the task's first line of
// output in docker mode with a local image, against the same task run as
// a process: a shell task (busybox image) and a Python task without
// requirements (Debian image; its environment cached by an earlier run,
// as on a machine that has run a task before).
func BenchmarkDockerFirstLine(b *testing.B) {
	dockertest.Require(b)
	busybox, python := dockertest.Busybox(b), dockertest.Python(b)
	shell := map[string]any{"binary": "/bin/sh", "entry_point": "t.sh", "diff": "echo FIRST LINE\n"}
	py := map[string]any{"binary": "python3", "entry_point": "t.py", "diff": "print('FIRST LINE', flush=True)\n"}
	for _, tc := range []struct {
		name   string
		docker []string
		script map[string]any
	}{
		{"process-shell", nil, shell},
		{"docker-shell-busybox", []string{"--docker", busybox}, shell},
		{"process-python", nil, py},
		{"docker-python-debian", []string{"--docker", python}, py},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b)
			env := append(e.daemonEnv(), "CLEARML_AGENT__AGENT__DOCKER_INSTALL_OPENCV_LIBS=false")
			args := append([]string{"--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--cpu-only"}, tc.docker...)
			testbin.Start(b, env, args...)
			firstLineOf(b, e, tc.script) // warm: image in the page cache, environment built
			var ds []time.Duration
			b.ResetTimer()
			for range b.N {
				ds = append(ds, firstLineOf(b, e, tc.script))
			}
			b.StopTimer()
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), "first-line-p50-ms")
			b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), "first-line-max-ms")
		})
	}
}

// firstLineOf enqueues a task with the given script and returns the time
// from its enqueue to the log event holding "FIRST LINE".
func firstLineOf(b *testing.B, e *env, script map[string]any) time.Duration {
	b.Helper()
	ctx := context.Background()
	var created api.IDResponse
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "first line", "type": "training", "script": script}, &created, apiclient.Default); err != nil {
		b.Fatal(err)
	}
	var enq struct {
		Fields struct {
			StatusChanged api.Time `json:"status_changed"`
		}
	}
	if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, &enq, apiclient.Default); err != nil {
		b.Fatal(err)
	}
	// (The time is the server's: the line's timestamp.)
	var first time.Time
	testwait.Until(b, 3*time.Minute, func() bool {
		var resp api.TaskLogResponse
		if err := e.api.Call(ctx, "", "events.get_task_log", map[string]any{"task": created.ID, "navigate_earlier": false}, &resp, apiclient.Default); err != nil {
			b.Fatal(err)
		}
		for _, ev := range resp.Events {
			if msg, _ := ev["msg"].(string); strings.Contains(msg, "FIRST LINE") && !strings.Contains(msg, "echo FIRST") && !strings.Contains(msg, "print(") {
				ts, _ := ev["timestamp"].(float64)
				first = time.UnixMilli(int64(ts))
				return true
			}
		}
		return false
	}, "the first line of "+created.ID)
	e.waitStatus(created.ID, time.Minute, "completed", "failed")
	return first.Sub(enq.Fields.StatusChanged.Time)
}
