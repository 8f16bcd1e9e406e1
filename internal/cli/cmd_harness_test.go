package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/clientconf"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

// cmdEnv is a real server in this process, a clearml.conf that points at
// it, and an API client for setting up and checking.
type cmdEnv struct {
	t    *testing.T
	conf string
	// url, key and secret are the server's address and credentials.
	url, key, secret string
	c                *apiclient.Client
	ctx              context.Context
}

func newCmdEnv(t *testing.T) *cmdEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "clearml.db"))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := server.Bootstrap(ctx, st); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{Now: distinctMilliseconds()})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	creds, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	conf := filepath.Join(t.TempDir(), "clearml.conf")
	if err := clientconf.Write(conf, clientconf.Client{APIServer: hs.URL, WebServer: hs.URL, FilesServer: hs.URL,
		AccessKey: creds.AccessKey, SecretKey: creds.SecretKey}); err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(apiclient.Config{Server: hs.URL, AccessKey: creds.AccessKey, SecretKey: creds.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return &cmdEnv{t: t, conf: conf, c: c, ctx: ctx, url: hs.URL, key: creds.AccessKey, secret: creds.SecretKey}
}

// distinctMilliseconds is the time of day, except that no two calls get
// the same millisecond: records made one after the other (two tasks'
// created times) are in order, as the server stores times to the
// millisecond.
func distinctMilliseconds() func() time.Time {
	var mu sync.Mutex
	var last time.Time
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if next := last.Truncate(time.Millisecond).Add(time.Millisecond); now.Before(next) {
			now = next
		}
		last = now
		return now
	}
}

// run calls Main with the environment's configuration file.
func (e *cmdEnv) run(args ...string) (stdout, stderr string, code int) {
	var o, er bytes.Buffer
	code = Main(append([]string{"--config-file", e.conf}, args...), &o, &er)
	return o.String(), er.String(), code
}

// mustRun runs a command that must succeed and returns its stdout.
func (e *cmdEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// submit submits a script and returns the new task's id.
func (e *cmdEnv) submit(args ...string) string {
	e.t.Helper()
	out := e.mustRun(append([]string{"submit"}, args...)...)
	id := strings.TrimSpace(out)
	if id == "" || strings.ContainsAny(id, " \n") {
		e.t.Fatalf("submit printed %q, want a task id", out)
	}
	return id
}

func (e *cmdEnv) task(id string) *api.Task {
	e.t.Helper()
	_, t, err := getTask(e.ctx, e.c, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// queueID returns the id of the queue with this name.
func (e *cmdEnv) queueID(name string) string {
	e.t.Helper()
	qs, err := e.c.QueuesByName(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == name {
			return q.ID
		}
	}
	e.t.Fatalf("no queue %q", name)
	return ""
}

// logLines posts log events to a task, one per message, at the given
// timestamps (epoch ms).
func (e *cmdEnv) logLines(task string, ts []int64, msgs ...string) {
	e.t.Helper()
	var lines [][]byte
	for i, m := range msgs {
		ev := map[string]any{"type": "log", "task": task, "level": "info", "worker": "w", "msg": m, "timestamp": ts[i]}
		b, _ := json.Marshal(ev)
		lines = append(lines, b)
	}
	if _, _, err := e.c.AddEvents(e.ctx, lines, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
}

// writeFile writes a file, creating its folder.
func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gitRepo makes a checkout with one commit, a remote with credentials in
// its URL, and an uncommitted change; it returns the root and the commit.
func gitRepo(t *testing.T) (root, commit string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed; skipping the test that needs a checkout")
	}
	root = t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", root, "-c", "user.name=Test", "-c", "user.email=t@example.com",
			"-c", "commit.gpgsign=false"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("symbolic-ref", "HEAD", "refs/heads/main")
	writeFile(t, filepath.Join(root, "sub", "train.py"), "print('v1')\n")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	git("remote", "add", "origin", "https://user:token@git.example.com/org/proj.git")
	writeFile(t, filepath.Join(root, "sub", "train.py"), "print('v2')\n")
	return root, git("rev-parse", "HEAD")
}
