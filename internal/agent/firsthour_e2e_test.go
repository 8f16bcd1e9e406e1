package agent_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// home is a fresh user home in which commands run with no ClearML
// configuration but what they write themselves: the embedded default.
type home struct {
	t      *testing.T
	dir    string
	listen string
	env    []string
}

func newHome(t *testing.T) *home {
	t.Helper()
	h := &home{t: t, dir: t.TempDir(), listen: freeAddr(t)}
	tmp := filepath.Join(h.dir, "tmp")
	os.MkdirAll(tmp, 0o700)
	h.env = []string{"HOME=" + h.dir, "TMPDIR=" + tmp, "XDG_CACHE_HOME=" + filepath.Join(h.dir, ".cache"),
		"CLEARML_AGENT_EMBEDDED_LISTEN=" + h.listen, "CLEARML_CONFIG_FILE=", "CLEARML_API_HOST=",
		"CLEARML_API_ACCESS_KEY=", "CLEARML_API_SECRET_KEY=", "CLEARML_WORKER_ID=", "CLEARML_WORKER_NAME=firsthour",
		"CLEARML_AGENT__AGENT__REATTACH_TIMEOUT_SEC=15"}
	return h
}

func (h *home) conf() string { return filepath.Join(h.dir, "clearml.conf") }

// daemon starts `daemon --queue default --foreground` with extra
// environment (a worker id, say).
func (h *home) daemon(env ...string) *testbin.Process {
	return testbin.Start(h.t, append(append([]string{}, h.env...), env...), "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
}

// run runs one command to its end.
// run runs one command to its end: exit code and the output of both
// streams.
func (h *home) run(args ...string) (int, string) {
	h.t.Helper()
	code, out, errOut := testbin.Run(h.t, h.env, 60*time.Second, args...)
	return code, out + errOut
}

func (h *home) appendConf(text string) {
	h.t.Helper()
	f, err := os.OpenFile(h.conf(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		h.t.Fatal(err)
	}
}

func stopProcess(t *testing.T, p *testbin.Process) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Output())
	}
}

// The written ~/clearml.conf is an ordinary configuration: settings added
// to it apply, a broken one is an error with its line, and a changed
// api_server is followed (the embedded server is then not started).
func TestEmbeddedConfigEditsApply(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	d := h.daemon()
	d.WaitOutput(t, "No ClearML configuration found: running the embedded server at http://"+h.listen, 60*time.Second)
	d.WaitOutput(t, "Listening to queues", 30*time.Second)
	stopProcess(t, d)
	raw, err := os.ReadFile(h.conf())
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(h.conf()); st.Mode().Perm() != 0o600 {
		t.Errorf("~/clearml.conf mode %v, want 0600", st.Mode().Perm())
	}
	if !strings.Contains(string(raw), "add agent { ... }") {
		t.Errorf("the written file does not say how to change settings:\n%s", raw)
	}

	h.appendConf("agent { worker_id: \"edited-worker\" }\n")
	d = h.daemon()
	d.WaitOutput(t, "Using "+h.conf()+" (embedded default): running the embedded server", 60*time.Second)
	d.WaitOutput(t, "worker=edited-worker", 30*time.Second)
	// The daemon names its worker before it registers it: the list is
	// asked until the worker is in it.
	var code int
	var out string
	if !testwait.For(60*time.Second, func() bool {
		code, out = h.run("workers", "list")
		return code == 0 && strings.Contains(out, "edited-worker")
	}) {
		t.Fatalf("workers list = %d %s", code, out)
	}
	stopProcess(t, d)

	// A broken file: an error with its line, not silence.
	good, _ := os.ReadFile(h.conf())
	h.appendConf("agent {\n  worker_name: [ }\n")
	lines := strings.Count(string(good), "\n")
	for _, args := range [][]string{{"daemon", "--queue", "default", "--foreground"}, {"tasks", "list"}} {
		code, out := h.run(args...)
		if code == 0 || !strings.Contains(out, h.conf()+":"+itoa(lines+2)+":") {
			t.Fatalf("%v with a broken clearml.conf: exit %d, output %q (want its line %d)", args, code, out, lines+2)
		}
	}

	// Another server in api_server: followed, and no embedded server.
	other := testbin.StartServer(t, t.TempDir())
	text := regexp.MustCompile(`(?m)^(\s*api_server:).*$`).ReplaceAllString(string(good), "$1 \""+other.URL+"\"")
	text = regexp.MustCompile(`"access_key" = "[^"]*"`).ReplaceAllString(text, `"access_key" = "`+other.AccessKey+`"`)
	text = regexp.MustCompile(`"secret_key" = "[^"]*"`).ReplaceAllString(text, `"secret_key" = "`+other.SecretKey+`"`)
	if err := os.WriteFile(h.conf(), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d = h.daemon()
	d.WaitOutput(t, "server="+other.URL, 60*time.Second)
	d.WaitOutput(t, "Listening to queues", 30*time.Second)
	if strings.Contains(d.Output(), "embedded") {
		t.Errorf("the daemon mentions the embedded server although api_server names another:\n%s", d.Output())
	}
	if err := pingAddr(h.listen); err == nil {
		t.Error("the embedded server was started although api_server names another server")
	}
	stopProcess(t, d)
}

// A second daemon joins the embedded server the first one runs; `server`
// says that one runs and where; `daemon --status` works meanwhile; when the
// first daemon dies, the second serves the data itself; the same arguments
// that started a daemon stop it; with every daemon stopped, a command fails
// at once with one line.
func TestEmbeddedServerSharedOnOneMachine(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	first := h.daemon()
	first.WaitOutput(t, "running the embedded server at http://"+h.listen, 60*time.Second)
	first.WaitOutput(t, "Listening to queues", 30*time.Second)
	second := h.daemon("CLEARML_WORKER_ID=second-daemon")
	second.WaitOutput(t, "joined the embedded server already running at http://"+h.listen, 60*time.Second)
	second.WaitOutput(t, "Listening to queues", 30*time.Second)

	start := time.Now()
	code, out := h.run("server", "--listen", freeAddr(t))
	if code == 0 || !strings.Contains(out, "a server already runs on the data folder") || !strings.Contains(out, "http://"+h.listen) {
		t.Fatalf("server beside the embedded one: exit %d\n%s", code, out)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("server took %v to say so", el)
	}
	if code, out := h.run("daemon", "--queue", "default", "--status"); code != 0 || !strings.Contains(out, "Listening to queue 'default'") {
		t.Fatalf("daemon --status: exit %d\n%s", code, out)
	}
	if code, out := h.run("list"); code != 0 || !strings.Contains(out, "firsthour:0") || !strings.Contains(out, "second-daemon") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}

	// The first daemon dies: the second one takes the server over, and
	// work goes on.
	first.Signal(syscall.SIGKILL)
	first.Wait(10 * time.Second)
	second.WaitOutput(t, "this daemon runs it now", 30*time.Second)
	code, id, errOut := testbin.Run(t, h.env, 60*time.Second, "submit", "--no-repo", "--script", writeScript(t, "print('after the take-over')\n"), "--queue", "default")
	if code != 0 {
		t.Fatalf("submit: %d %s", code, errOut)
	}
	id = strings.TrimSpace(id)
	if code, out := h.run("tasks", "logs", "--follow", id); code != 0 || !strings.Contains(out, "after the take-over") {
		t.Fatalf("task after the take-over: exit %d\n%s", code, out)
	}

	// The same arguments stop it (the environment gives its worker id).
	code, out, errOut = testbin.Run(t, append(append([]string{}, h.env...), "CLEARML_WORKER_ID=second-daemon"), 90*time.Second,
		"daemon", "--queue", "default", "--stop")
	if code != 0 {
		out += errOut
		t.Fatalf("daemon --stop: exit %d\n%s", code, out)
	}
	if code := second.Wait(60 * time.Second); code != 0 {
		t.Fatalf("second daemon after --stop: exit %d\n%s", code, second.Output())
	}

	start = time.Now()
	code, out = h.run("tasks", "list")
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "cannot reach the server at http://"+h.listen) {
		t.Fatalf("tasks list with no server: exit %d, want one line\n%s", code, out)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("tasks list took %v to fail", el)
	}
}

// A daemon whose server is down waits for it quietly (one line) and starts
// working when it answers.
func TestDaemonWaitsForItsServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := testbin.StartServerAt(t, filepath.Join(dir, "server"), addr)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	h := newHome(t)
	d := testbin.Start(t, h.env, "--config-file", srv.ConfigPath, "daemon", "--queue", "default", "--foreground")
	d.WaitOutput(t, "cannot reach the server at http://"+addr, 30*time.Second)
	testbin.StartServerAt(t, filepath.Join(dir, "server"), addr)
	d.WaitOutput(t, "Listening to queues", 60*time.Second)
	if n := strings.Count(d.Output(), "cannot reach"); n != 1 {
		t.Errorf("%d lines about the unreachable server, want 1:\n%s", n, d.Output())
	}
	stopProcess(t, d)
}

func writeScript(t *testing.T, code string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "task.py")
	if err := os.WriteFile(p, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func itoa(n int) string { return strconv.Itoa(n) }

// pingAddr checks whether a ClearML server answers at addr.
func pingAddr(addr string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/debug.ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// A requirement pip cannot install fails the task with one line that names
// pip's cause, said once in the log; pip's own output is in the log too.
func TestPipFailureReasonIsOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	env := append(e.daemonEnv(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+wheels(t),
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH="+filepath.Join(e.dir, "venvs"))
	testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground", "--polling-interval", "0.5")
	var created api.IDResponse
	if err := e.api.Call(context.Background(), "", "tasks.create", map[string]any{"name": "bad requirement", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "task.py", "diff": "print('never')\n",
			"requirements": map[string]any{"pip": "nothere==9.9\n"}}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	if err := e.api.Call(context.Background(), "", "tasks.enqueue", map[string]any{"task": created.ID}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := e.waitStatus(created.ID, 120*time.Second, "completed", "failed", "stopped")
	want := "could not install the task's requirements: pip install failed (exit status 1): ERROR: No matching distribution found for nothere==9.9"
	if tk.Status != "failed" || tk.StatusReason != want {
		t.Fatalf("task = %s %q, want failed %q", tk.Status, tk.StatusReason, want)
	}
	log := strings.Join(e.logLines(created.ID), "\n")
	if n := strings.Count(log, want); n != 1 {
		t.Errorf("the reason is in the log %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "Could not find a version that satisfies the requirement nothere==9.9") {
		t.Errorf("pip's own output is not in the log:\n%s", log)
	}
}

// The daemon's own lines are in one format: human by default, JSON (one
// object a line) with --log-format json; a signal while idle says the
// daemon stops, and the last line says it stopped.
func TestDaemonOutputFormats(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	human := h.daemon()
	human.WaitOutput(t, "Listening to queues", 60*time.Second)
	human.Signal(syscall.SIGINT)
	if code := human.Wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, human.Output())
	}
	lines := strings.Split(strings.TrimSpace(human.Output()), "\n")
	timeLevel := regexp.MustCompile(`^\d\d:\d\d:\d\d (DEBUG|INFO |WARN |ERROR) `)
	for _, l := range lines {
		if !timeLevel.MatchString(l) {
			t.Errorf("a line not in the human format: %q", l)
		}
	}
	if !strings.Contains(human.Output(), "signal received: stopping (no task is running)") || !strings.Contains(lines[len(lines)-1], "clearml-agent daemon stopped") {
		t.Errorf("no stop lines:\n%s", human.Output())
	}

	js := testbin.Start(t, h.env, "--log-format", "json", "daemon", "--queue", "default", "--foreground")
	js.WaitOutput(t, `"msg":"Listening to queues"`, 60*time.Second)
	js.Signal(syscall.SIGTERM)
	js.Wait(30 * time.Second)
	for _, l := range strings.Split(strings.TrimSpace(js.Output()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("not a JSON log line: %q (%v)", l, err)
		}
	}
	if code, out := h.run("--log-format", "xml", "daemon", "--queue", "default"); code != 2 || !strings.Contains(out, `invalid log format "xml"`) {
		t.Errorf("--log-format xml: exit %d %s", code, out)
	}
}
