package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/memtrim/memtrimtest"
	"github.com/goclearml/agent/internal/testwait"
)

// The test binary is also the shim (Executor.Self defaults to it).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ShimCommand {
		os.Exit(ShimMain(os.Args[2:], testPreparer))
	}
	os.Exit(m.Run())
}

// startShim starts a run's shim as Run does, and lets go of the run
// folder's watch that Run would hand to follow.
func startShim(e *Executor, spec Spec, dir string) error {
	_, w, err := e.startShim(spec, dir)
	if w != nil {
		w.close()
	}
	return err
}

func alive(pid string) bool {
	f, err := statFields(pid)
	return err == nil && len(f) > 0 && f[0] != "Z"
}

// A daemon that leaves its session and clears its environment (so no
// marker, no process group, no session ties it to the task) is still
// stopped: it is re-parented to the shim, not to init.
func TestAbortKillsEnvClearingDaemon(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `setsid sh -c 'exec env -i /bin/sh -c "trap \"\" TERM; sleep 303 & echo \$! > ` + pidFile + `; wait"' &
echo started; wait`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := startRun(t, ctx, script, 500*time.Millisecond)
	r.waitOutput(t, "started")
	// The daemon is up (its trap set) once it wrote its child's pid.
	testwait.Until(t, 30*time.Second, func() bool {
		raw, _ := os.ReadFile(pidFile)
		return strings.HasSuffix(string(raw), "\n")
	}, "the daemon's pid file")
	cancel()
	exit, out := r.wait(t)
	if !exit.Cancelled || !strings.Contains(out, "started") {
		t.Fatalf("exit %+v output %q", exit, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(raw))
	env, _ := os.ReadFile("/proc/" + pid + "/environ")
	if strings.Contains(string(env), RunMarkerEnv) {
		t.Fatalf("the test's daemon kept the marker; it should have cleared its environment")
	}
	if alive(pid) {
		syscall.Kill(atoi(pid), syscall.SIGKILL)
		t.Fatalf("process %s escaped the abort", pid)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// A run survives its follower: another one attaches, reads the output
// from the start (or any offset), and gets the exit status.
func TestAttachToARunningTask(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := &Executor{}
	// The task prints a line, then waits for the test (on a FIFO) before
	// it prints another and exits.
	release := filepath.Join(t.TempDir(), "release")
	if err := syscall.Mkfifo(release, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Argv: []string{"sh", "-c", "echo one; read x < " + release + "; echo two; exit 5"}, Env: os.Environ(),
		Marker: "attach-" + t.Name(), RunDir: dir}
	if err := startShim(e, spec, dir); err != nil {
		t.Fatal(err)
	}
	// Nobody follows (the daemon "died"): the task runs on and prints.
	testwait.Until(t, 30*time.Second, func() bool {
		out, _ := os.ReadFile(filepath.Join(dir, OutputFile))
		return string(out) == "one\n"
	}, "the task's first line")
	if !ShimAlive(dir) || Ended(dir) {
		t.Fatal("the run did not go on alone")
	}
	type result struct {
		exit Exit
		err  error
	}
	var out testwait.Output
	attached := make(chan result, 1)
	go func() {
		exit, err := (&Executor{}).Attach(context.Background(), spec, 4, &out)
		attached <- result{exit, err}
	}()
	// Let the task go on (opening the FIFO waits for the task's read).
	f, err := os.OpenFile(release, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n")
	f.Close()
	select {
	case r := <-attached:
		if r.err != nil || r.exit.Code != 5 || out.String() != "two\n" {
			t.Fatalf("attach: exit %+v err %v output %q", r.exit, r.err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("attach did not return; output %q", out.String())
	}
}

// Aborting an attached run stops it, as for a run the follower started.
func TestAbortAfterAttach(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := Spec{Argv: []string{"sh", "-c", "trap 'echo bye; exit 9' TERM; echo up; while :; do sleep 0.05; done"}, Env: os.Environ(),
		Marker: "abort-attach", RunDir: dir, GracePeriod: 2 * time.Second}
	if err := startShim(&Executor{}, spec, dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testwait.Output
	var exit Exit
	var err error
	attached := make(chan struct{})
	go func() {
		defer close(attached)
		exit, err = (&Executor{}).Attach(ctx, spec, 0, &out)
	}()
	// "up" comes after the trap is set.
	testwait.Until(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "up") }, "the task's first line")
	cancel()
	select {
	case <-attached:
	case <-time.After(60 * time.Second):
		t.Fatalf("attach did not return after the cancel; output %q", out.String())
	}
	if err != nil || !exit.Cancelled || exit.Code != 9 || !strings.Contains(out.String(), "bye") {
		t.Fatalf("exit %+v err %v output %q", exit, err, out.String())
	}
}

// A run no daemon follows any more is stopped by its shim after LostAfter,
// and recorded lost: a running task (killed by the signal), and a setup the
// shim runs in its own process (stopped, with the setup's status 143).
func TestShimStopsUnfollowedRuns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		argv []string
		code func(int) bool
	}{
		{"task", []string{"sleep", "300"}, func(c int) bool { return c < 0 }},
		{"setup", []string{"prep", "block"}, func(c int) bool { return c == 143 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			spec := Spec{Argv: tc.argv, Env: os.Environ(), Marker: "lost-" + tc.name, RunDir: dir}
			if err := startShim(&Executor{LostAfter: time.Second}, spec, dir); err != nil {
				t.Fatal(err)
			}
			// The owner is a process that exits at once.
			os.WriteFile(filepath.Join(dir, ownerFile), []byte("999999999"), 0o600)
			testwait.Until(t, 30*time.Second, func() bool { return Ended(dir) }, "the shim to stop the unfollowed run")
			x, _, _ := readExit(dir)
			if !x.Lost || !tc.code(x.Code) {
				t.Fatalf("exit = %+v", x)
			}
		})
	}
}

// Once its task has started, a shim gives back the pages of the binary its
// start (and a setup in it) touched; the task runs on and its exit is
// recorded as before.
func TestShimSettles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		argv func(script string) []string
	}{
		{"task", func(script string) []string { return []string{"sh", "-c", script} }},
		{"setup", func(script string) []string { return []string{"prep", "ok", script} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			release := filepath.Join(t.TempDir(), "release")
			if err := syscall.Mkfifo(release, 0o600); err != nil {
				t.Fatal(err)
			}
			spec := Spec{Argv: tc.argv("read x < " + release + "; exit 4"), Env: os.Environ(),
				Marker: "settle-" + tc.name, RunDir: dir}
			if err := startShim(&Executor{}, spec, dir); err != nil {
				t.Fatal(err)
			}
			var si shimInfo
			testwait.Until(t, 30*time.Second, func() bool {
				return readJSON(filepath.Join(dir, shimFile), &si) == nil && si.ChildPID > 0
			}, "the task's start")
			memtrimtest.WaitSettled(t, si.ShimPID, 2*time.Minute)
			f, err := os.OpenFile(release, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("\n")
			f.Close()
			testwait.Until(t, 30*time.Second, func() bool { return Ended(dir) }, "the run's end")
			if x, _, err := readExit(dir); err != nil || x.Code != 4 {
				t.Fatalf("exit = %+v, %v", x, err)
			}
		})
	}
}
