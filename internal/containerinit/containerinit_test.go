package containerinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// The test binary doubles as the container's entry point: run as
// "container-env FILE" it dumps its environment (the set-up script's last
// step), and with CONTAINERINIT_TEST_ARGV it is the first process.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "container-env" {
		if err := DumpEnv(os.Args[2]); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	if argv := os.Getenv("CONTAINERINIT_TEST_ARGV"); argv != "" {
		os.Exit(Run(Options{Script: os.Getenv("CONTAINERINIT_TEST_SCRIPT"), Argv: strings.Split(argv, "\x1f")}))
	}
	os.Exit(m.Run())
}

func start(t *testing.T, script string, argv ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CONTAINERINIT_TEST_ARGV="+strings.Join(argv, "\x1f"), "CONTAINERINIT_TEST_SCRIPT="+script)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("entry point did not exit")
		return -1
	}
}

func TestSetupScriptExportsReachTheTask(t *testing.T) {
	script := filepath.Join(t.TempDir(), "init.sh")
	os.WriteFile(script, []byte("export FROM_SETUP=yes\necho setting up\n"), 0o644)
	cmd, out := start(t, script, "sh", "-c", `echo "task sees FROM_SETUP=$FROM_SETUP"; echo to-stderr >&2; exit 7`)
	if code := exitCode(t, cmd); code != 7 {
		t.Fatalf("exit %d, want the task's 7\n%s", code, out)
	}
	for _, want := range []string{"setting up", "task sees FROM_SETUP=yes", "to-stderr"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSetupScriptThatExitsStopsTheStart(t *testing.T) {
	script := filepath.Join(t.TempDir(), "init.sh")
	os.WriteFile(script, []byte("echo broken setup\nexit 4\n"), 0o644)
	cmd, out := start(t, script, "sh", "-c", "echo the task ran")
	if code := exitCode(t, cmd); code != 4 {
		t.Fatalf("exit %d, want 4\n%s", code, out)
	}
	if strings.Contains(out.String(), "the task ran") || !strings.Contains(out.String(), "exited (status 4) before the task could start") {
		t.Fatalf("output:\n%s", out)
	}
}

// docker stop sends SIGTERM to the first process: it reaches the task's
// process group, and the status says the task was terminated.
func TestStopSignalReachesTheTask(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd, out := start(t, "", "sh", "-c", `trap 'echo "task got TERM"; exit 0' TERM; sleep 60 & touch `+ready+`; wait`)
	testwait.Until(t, 30*time.Second, func() bool {
		_, err := os.Stat(ready)
		return err == nil
	}, "the task to start (its trap set)")
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(out.String(), "task got TERM") {
		t.Fatalf("the task's trap did not run:\n%s", out)
	}
}

func TestMissingCommand(t *testing.T) {
	cmd, out := start(t, "", "no-such-command-here")
	if code := exitCode(t, cmd); code != 127 {
		t.Fatalf("exit %d, want 127\n%s", code, out)
	}
}

func TestKilledTaskStatus(t *testing.T) {
	cmd, out := start(t, "", "sh", "-c", "kill -9 $$")
	if code := exitCode(t, cmd); code != 128+9 {
		t.Fatalf("exit %d, want 137\n%s", code, out)
	}
}
