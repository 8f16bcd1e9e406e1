package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A task's shim runs the daemon's execute of the task in its own process
// (shimExecute): it takes that command line and no other, prepares the task
// as execute does (marked started on the server, the setup said in the
// task's output) and returns the task's own command; a failure is said as
// execute says it, with its exit status.
func TestShimExecute(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := newCmdEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the task folders
	script := writeFile(t, filepath.Join(t.TempDir(), "job.sh"), "echo from the task\n")
	id := e.submit("--script", script, "--queue", "default")

	daemons := []string{self, "--config-file", e.conf, "execute", "--disable-monitoring", "--log-level", "INFO", "--id", id}
	for _, argv := range [][]string{
		{"/bin/true", "execute", "--id", id},
		{self, "--config-file", e.conf, "execute", "--full-monitoring", "--id", id},
		{self, "execute", "--help"},
		{self, "execute"},
		{self, "daemon", "--queue", "default"},
		{self, "--version"},
		{self},
	} {
		if _, ok := shimExecute(argv); ok {
			t.Errorf("shimExecute took %q; it should start it as a process", argv)
		}
	}
	prepare, ok := shimExecute(daemons)
	if !ok {
		t.Fatalf("shimExecute does not take the daemon's execute %q", daemons)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	l, err := prepare(context.Background(), out)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	said, _ := os.ReadFile(out.Name())
	for _, want := range []string{"Running task id [" + id + "]", "Starting Task Execution"} {
		if !bytes.Contains(said, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, said)
		}
	}
	if got := e.task(id).Status; got != "in_progress" {
		t.Errorf("task status %q after the setup, want in_progress", got)
	}
	if !filepath.IsAbs(l.Path) || len(l.Argv) != 2 || l.Argv[0] != "bash" || filepath.Base(l.Argv[1]) != "job.sh" ||
		!slices.Contains(l.Env, "CLEARML_TASK_ID="+id) {
		t.Fatalf("launch %+v", l)
	}
	cmd := exec.Command(l.Path, l.Argv[1:]...)
	cmd.Dir, cmd.Env = l.Dir, l.Env
	if got, err := cmd.CombinedOutput(); err != nil || string(got) != "from the task\n" {
		t.Fatalf("the prepared command: %v, output %q", err, got)
	}

	prepare, _ = shimExecute(slices.Concat(daemons[:len(daemons)-1], []string{"0123456789abcdef0123456789abcdef"}))
	_, err = prepare(context.Background(), out)
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("prepare of a missing task: %v, want exit status 1", err)
	}
	said, _ = os.ReadFile(out.Name())
	if !strings.Contains(string(said), "clearml-agent: reading task 0123456789abcdef0123456789abcdef") {
		t.Fatalf("output does not say why the setup failed:\n%s", said)
	}
}
