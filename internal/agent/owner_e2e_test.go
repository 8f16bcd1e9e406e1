package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/clientconf"
)

// TestUseOwnerToken: an admin daemon with --use-owner-token runs a task as
// its owner (the task's status changes and its process act as that user);
// a non-admin daemon is refused clearly.
func TestUseOwnerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var user struct{ ID string }
	if err := e.api.Call(ctx, "", "auth.create_user", map[string]any{"name": "alice"}, &user, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	var creds struct {
		Credentials struct {
			AccessKey string `json:"access_key"`
			SecretKey string `json:"secret_key"`
		}
	}
	if err := e.api.Call(ctx, "", "auth.create_credentials", map[string]any{"user": user.ID}, &creds, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	alice, err := apiclient.New(apiclient.Config{Server: e.srv.URL, AccessKey: creds.Credentials.AccessKey, SecretKey: creds.Credentials.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	var created api.IDResponse
	script := "import os, json, base64\ntok = os.environ['CLEARML_AUTH_TOKEN'].split('.')[1]\n" +
		"print('RUN AS', json.loads(base64.urlsafe_b64decode(tok + '=' * (-len(tok) % 4)))['identity']['user'])\n"
	if err := alice.Call(ctx, "", "tasks.create", map[string]any{"name": "alice's task", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "t.py", "diff": script}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if err := alice.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	d := e.daemon("--queue", "default", "--use-owner-token")
	tk := e.waitStatus(created.ID, 60*time.Second, "completed", "failed", "stopped")
	log := strings.Join(e.logLines(created.ID), "\n")
	if tk.Status != "completed" || !strings.Contains(log, "RUN AS "+user.ID) || tk.LastChangedBy != user.ID {
		t.Fatalf("task = %s %q last_changed_by=%s (alice %s)\n%s\n%s", tk.Status, tk.StatusReason, tk.LastChangedBy, user.ID, log, d.Output())
	}
	// A daemon with a non-admin identity is refused.
	conf := filepath.Join(e.dir, "alice.conf")
	if err := clientconf.Write(conf, clientconf.Client{APIServer: e.srv.URL, WebServer: e.srv.URL, FilesServer: e.srv.URL,
		AccessKey: creds.Credentials.AccessKey, SecretKey: creds.Credentials.SecretKey}); err != nil {
		t.Fatal(err)
	}
	p := e.run2(conf, "daemon", "--queue", "default", "--use-owner-token", "--foreground")
	if p.code == 0 || !strings.Contains(p.out, "user role not suitable for --use-owner-token") {
		t.Fatalf("non-admin --use-owner-token: exit %d\n%s", p.code, p.out)
	}
	_ = os.Remove(conf)
}

type result struct {
	code int
	out  string
}

// run2 runs the binary with another configuration file.
func (e *env) run2(conf string, args ...string) result {
	e.t.Helper()
	old := e.srv.ConfigPath
	e.srv.ConfigPath = conf
	defer func() { e.srv.ConfigPath = old }()
	code, out := e.run(args...)
	return result{code, out}
}
