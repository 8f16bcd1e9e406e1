package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// A password in the task's repository URL appears neither in the task log
// nor on the daemon's console (it was printed in "Cloning https://user:PASS@...").
func TestRepositoryURLPasswordNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const pass = "urlpass-S3CRET-4444"
	d := e.daemon("--queue", "default")
	ctx := context.Background()
	var created api.IDResponse
	// Nothing listens on the address: the clone fails, after its lines.
	repo := "http://someone:" + pass + "@" + freeAddr(t) + "/team/repo.git"
	err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "url with password", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "main.py", "repository": repo, "branch": "main"}}, &created, apiclient.Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := e.waitStatus(created.ID, 60*time.Second, "failed", "completed", "stopped")
	log := strings.Join(e.logLines(created.ID), "\n")
	if tk.Status != "failed" || !strings.Contains(log, "Cloning http://someone:********@") {
		t.Fatalf("task = %s %q; the log does not show the masked URL:\n%s", tk.Status, tk.StatusReason, log)
	}
	// The console shows the task's lines too, up to its end.
	d.WaitOutput(t, "failed cloning repository", 30*time.Second)
	for where, text := range map[string]string{"task log": log, "status reason": tk.StatusReason, "daemon console": d.Output()} {
		if strings.Contains(text, pass) {
			t.Errorf("the URL's password is in the %s:\n%s", where, text)
		}
	}
}
