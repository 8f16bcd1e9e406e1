package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testwait"
)

// A misspelt queue is an error that names the closest queue, and creates
// nothing; --create-queue creates it; a name that differs only in case is
// the existing queue.
func TestSubmitToUnknownQueue(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	script := writeFile(t, t.TempDir()+"/job.py", "print(1)\n")
	e.mustRun("submit", "--script", script, "--queue", "training", "--create-queue")
	before := e.countTasks()
	_, errOut, code := e.run("submit", "--script", script, "--queue", "trainign", "--project", "NotCreated")
	if code != 2 || !strings.Contains(errOut, `no queue named "trainign" (did you mean "training"?); pass --create-queue to create it`) {
		t.Fatalf("submit to a misspelt queue: exit %d, stderr %q", code, errOut)
	}
	if after := e.countTasks(); after != before {
		t.Errorf("the refused submit created %d task(s)", after-before)
	}
	var projects struct {
		Projects []map[string]any `json:"projects"`
	}
	if err := e.c.Call(e.ctx, "", "projects.get_all", map[string]any{"name": "NotCreated"}, &projects, apiclient.Default); err != nil || len(projects.Projects) != 0 {
		t.Errorf("the refused submit created a project: %v %v", projects.Projects, err)
	}
	_, errOut, code = e.run("submit", "--script", script, "--queue", "zzzz")
	if code != 2 || !strings.Contains(errOut, `no queue named "zzzz" (queues: `) || !strings.Contains(errOut, `"training"`) {
		t.Fatalf("submit to an unknown queue: exit %d, stderr %q", code, errOut)
	}
	id := e.submit("--script", script, "--queue", "TRAINING")
	if q, _ := e.task(id).Execution["queue"].(string); q != e.queueID("training") {
		t.Errorf("TRAINING went to queue %q, want training", q)
	}
	_, errOut, code = e.run("tasks", "enqueue", id, "--queue", "nope")
	if code != 2 || !strings.Contains(errOut, `no queue named "nope"`) {
		t.Errorf("tasks enqueue to an unknown queue: exit %d, stderr %q", code, errOut)
	}
}

// Enqueueing a task that already ran says how to run it again.
func TestEnqueueCompletedTaskSuggestsReset(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	id := e.submit("--script", writeFile(t, t.TempDir()+"/job.py", "print(1)\n"))
	for _, ep := range []string{"tasks.started", "tasks.completed"} {
		if err := e.c.SetStatus(e.ctx, ep, id, true, "", "", apiclient.Default); err != nil {
			t.Fatal(err)
		}
	}
	_, errOut, code := e.run("tasks", "enqueue", id)
	if code == 0 || !strings.Contains(errOut, `the task is completed: run "clearml-agent tasks reset `+id+`" first`) {
		t.Fatalf("enqueue of a completed task: exit %d, stderr %q", code, errOut)
	}
}

// `tasks logs --follow` on a queued task says where it stands and whether
// any worker listens to its queue.
func TestFollowQueuedTaskSaysWhere(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	script := writeFile(t, t.TempDir()+"/job.py", "print(1)\n")
	e.submit("--script", script, "--queue", "lonely", "--create-queue")
	id := e.submit("--script", script, "--queue", "lonely")
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var notes testwait.Output
	done := make(chan error, 1)
	go func() { done <- printLogs(ctx, e.c, id, true, 20*time.Millisecond, &strings.Builder{}, &notes) }()
	want := `Task ` + id + ` is queued in "lonely", position 2 of 2; no worker listens to this queue (start one: clearml-agent daemon --queue lonely)`
	testwait.Until(t, 30*time.Second, func() bool { return strings.Contains(notes.String(), want) }, "the queued note")
	if err := e.c.RegisterWorker(e.ctx, "listener", []string{e.queueID("lonely")}, nil); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 30*time.Second, func() bool { return strings.Contains(notes.String(), "; 1 worker listens to this queue") }, "the note about the worker")
	cancel()
	<-done
}

// countTasks counts the tasks on the server.
func (e *cmdEnv) countTasks() int {
	e.t.Helper()
	var r struct {
		Tasks []struct{} `json:"tasks"`
	}
	if err := e.c.Call(e.ctx, "", "tasks.get_all", map[string]any{"only_fields": []string{"id"}}, &r, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	return len(r.Tasks)
}
