// Package readme_test runs the README's quick start literally: the daemon
// command of its first block, then the walk-through block, in a temporary
// home, and checks that the example tasks reach the statuses the README
// promises and that the web UI the README points at lists them.
package readme_test

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// blocks returns the README's ```sh code blocks.
func blocks(t *testing.T, readme string) []string {
	t.Helper()
	var out []string
	var cur *strings.Builder
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && line == "```sh":
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

func TestREADMEQuickStart(t *testing.T) {
	for _, tool := range []string{"git", "python3", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the quick start needs %s, which is not installed", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bs := blocks(t, string(raw))
	var daemonCmd, walk string
	for _, b := range bs {
		if strings.Contains(b, "./clearml-agent daemon --queue default") && daemonCmd == "" {
			daemonCmd = strings.TrimSpace(b)
		}
		if strings.HasPrefix(b, "# Walk-through") {
			walk = b
		}
	}
	if daemonCmd == "" || walk == "" {
		t.Fatalf("README has no quick start daemon command or walk-through block")
	}
	// The commands run in the checkout, as a newcomer runs them: the
	// README builds ./clearml-agent there (ignored by git).
	work := root
	home := t.TempDir()
	wheels := t.TempDir()
	// No PyPI here: the walk-through's requirement comes from a local folder.
	if _, err := testbin.BuildWheel(wheels, "six", "1.16.0", map[string]string{"six.py": "__version__ = '1.16.0'\n"}); err != nil {
		t.Fatal(err)
	}
	// A fresh HOME would also mean a fresh Go build and module cache: keep
	// the machine's, as a newcomer's shell has them.
	goEnv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	gv := strings.Fields(string(goEnv))
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	env := append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "TMPDIR="+t.TempDir(),
		"CLEARML_AGENT_EMBEDDED_LISTEN="+addr, "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+wheels,
		"CLEARML_CONFIG_FILE=", "CLEARML_API_HOST=", "CLEARML_API_ACCESS_KEY=", "CLEARML_API_SECRET_KEY=",
		// A newcomer's Go builds with cgo when a C compiler is there: the
		// README's own command must give the static binary docker mode needs.
		"CGO_ENABLED="+cgoDefault(),
		"GOCACHE="+gv[0], "GOMODCACHE="+gv[1], "GOPATH="+gv[2])
	var daemonOut testwait.Output
	daemon := exec.Command("bash", "-c", daemonCmd)
	daemon.Dir, daemon.Env = work, env
	daemon.Stdout, daemon.Stderr = &daemonOut, &daemonOut
	daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-daemon.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { daemon.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-daemon.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	daemonStart := time.Now()
	// (The time includes the go build.)
	if !testwait.For(5*time.Minute, func() bool { return strings.Contains(daemonOut.String(), "Listening to queues") }) {
		t.Fatalf("the daemon did not start:\n%s", daemonOut.String())
	}
	t.Logf("daemon ready after %v", time.Since(daemonStart).Round(time.Second))
	if !strings.Contains(daemonOut.String(), "No ClearML configuration found") {
		t.Fatalf("the daemon did not say it runs the embedded server:\n%s", daemonOut.String())
	}
	if err := isStatic(filepath.Join(work, "clearml-agent")); err != nil {
		t.Errorf("the README's build command: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := exec.CommandContext(ctx, "bash", "-e", "-c", walk)
	w.Dir, w.Env = work, env
	walkStart := time.Now()
	out, err := w.CombinedOutput()
	t.Logf("walk-through took %v", time.Since(walkStart).Round(time.Second))
	text := string(out)
	t.Logf("walk-through output:\n%s", text)
	if err != nil {
		t.Fatalf("walk-through failed: %v\ndaemon:\n%s", err, daemonOut.String())
	}
	for _, want := range []string{"Hello from task", "six 1.16.0 is installed", "About to fail on purpose",
		"exit code 1: the task failed, as expected", "still working, step 0", "exit code 2: the task was stopped, as expected"} {
		if !strings.Contains(text, want) {
			t.Errorf("walk-through output lacks %q", want)
		}
	}
	// The statuses the README promises, from `tasks list --json`.
	list := exec.Command(filepath.Join(work, "clearml-agent"), "tasks", "list", "--json")
	list.Dir, list.Env = work, env
	raw, err = list.Output()
	if err != nil {
		t.Fatalf("tasks list --json: %v", err)
	}
	var tasks []map[string]any
	if err := json.Unmarshal(raw, &tasks); err != nil {
		var wrapped struct{ Tasks []map[string]any }
		if err2 := json.Unmarshal(raw, &wrapped); err2 != nil {
			t.Fatalf("tasks list --json output: %v\n%s", err, raw)
		}
		tasks = wrapped.Tasks
	}
	want := map[string][2]string{
		"hello.py":             {"completed", "worker execution done"},
		"with_requirements.py": {"completed", "worker execution done"},
		"fails.py":             {"failed", "worker execution exit code 3"},
		"long.py":              {"stopped", "task was stopped by tasks.stop"},
	}
	seen := 0
	for _, tk := range tasks {
		name, _ := tk["name"].(string)
		if w, ok := want[name]; ok {
			seen++
			if tk["status"] != w[0] || tk["status_reason"] != w[1] {
				t.Errorf("task %s: %v %q, want %s %q", name, tk["status"], tk["status_reason"], w[0], w[1])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d example tasks in %s", seen, len(want), raw)
	}
	if regexp.MustCompile(`secret_key`).Match(out) {
		t.Errorf("a secret key name appears in the walk-through output")
	}
	// The web UI the README points at: its tasks page, with the key pair
	// of the ~/clearml.conf the daemon wrote, lists the example tasks.
	conf, err := os.ReadFile(filepath.Join(home, "clearml.conf"))
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`"access_key" = "([^"]+)"`).FindSubmatch(conf)
	secret := regexp.MustCompile(`"secret_key" = "([^"]+)"`).FindSubmatch(conf)
	if key == nil || secret == nil || !strings.Contains(string(conf), `web_server: "http://`+addr+`"`) {
		t.Fatalf("~/clearml.conf lacks the key pair or the web UI's address:\n%s", conf)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/tasks", nil)
	req.SetBasicAuth(string(key[1]), string(secret[1]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "with_requirements.py") {
		t.Fatalf("the web UI's tasks page: %d\n%.500s", resp.StatusCode, page)
	}
}

// cgoDefault is what CGO_ENABLED is on a machine where nobody set it: 1
// when a C compiler is installed.
func cgoDefault() string {
	if _, err := exec.LookPath("gcc"); err == nil {
		return "1"
	}
	return "0"
}

// isStatic checks that an executable needs no dynamic loader (no
// PT_INTERP program header).
func isStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}
