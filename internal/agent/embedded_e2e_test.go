package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// TestEmbeddedDefault: with no configuration at all, `daemon --queue
// default` runs the server in-process, writes ~/clearml.conf for other
// clients, and runs tasks from it; a second start finds its data again.
func TestEmbeddedDefault(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	listen := freeAddr(t)
	env := []string{"HOME=" + home, "TMPDIR=" + t.TempDir(), "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"CLEARML_AGENT_EMBEDDED_LISTEN=" + listen, "CLEARML_CONFIG_FILE=", "CLEARML_API_HOST=", "CLEARML_API_ACCESS_KEY=", "CLEARML_API_SECRET_KEY="}
	start := func() *testbin.Process {
		d := testbin.Start(t, env, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
		d.WaitOutput(t, "running the embedded server at http://"+listen, 60*time.Second)
		return d
	}
	d := start()
	conf, err := os.ReadFile(filepath.Join(home, "clearml.conf"))
	if err != nil {
		t.Fatalf("~/clearml.conf not written: %v\n%s", err, d.Output())
	}
	key := regexp.MustCompile(`"access_key" = "([^"]+)"`).FindSubmatch(conf)
	secret := regexp.MustCompile(`"secret_key" = "([^"]+)"`).FindSubmatch(conf)
	if key == nil || secret == nil || !strings.Contains(string(conf), listen) {
		t.Fatalf("client config = %s", conf)
	}
	c, err := apiclient.New(apiclient.Config{Server: "http://" + listen, AccessKey: string(key[1]), SecretKey: string(secret[1])})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", map[string]any{"name": "embedded hello", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "hello.py", "diff": "print('hello from the embedded default')\n"}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	var tk *api.Task
	if !testwait.For(60*time.Second, func() bool {
		tk, err = c.Task(ctx, created.ID)
		return err == nil && tk.Status == api.StatusCompleted
	}) {
		t.Fatalf("task not completed: %+v %v\n%s", tk, err, d.Output())
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Fatalf("daemon exit %d\n%s", code, d.Output())
	}
	// The written ~/clearml.conf still means "embedded": a restart serves the same data.
	d2 := start()
	if err := c.Login(ctx); err != nil {
		t.Fatalf("login after restart: %v\n%s", err, d2.Output())
	}
	if tk, err := c.Task(ctx, created.ID); err != nil || tk.Status != api.StatusCompleted {
		t.Fatalf("task after restart = %+v %v", tk, err)
	}
}
