package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the shim (Executor.Self defaults to it).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ShimCommand {
		os.Exit(ShimMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func alive(pid string) bool {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// A daemon that leaves its session and clears its environment (so no
// marker, no process group, no session ties it to the task) is still
// stopped: it is re-parented to the shim, not to init.
func TestAbortKillsEnvClearingDaemon(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	script := `setsid sh -c 'exec env -i /bin/sh -c "trap \"\" TERM; sleep 303 & echo \$! > ` + pidFile + `; wait"' &
sleep 0.3; echo started; wait`
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(800*time.Millisecond, cancel)
	exit, out := run(t, ctx, script, 500*time.Millisecond)
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
	spec := Spec{Argv: []string{"sh", "-c", "echo one; sleep 0.5; echo two; exit 5"}, Env: os.Environ(), Marker: "attach-" + t.Name(), RunDir: dir}
	if err := e.startShim(spec, dir); err != nil {
		t.Fatal(err)
	}
	// Nobody follows for a while (the daemon "died").
	time.Sleep(200 * time.Millisecond)
	if !ShimAlive(dir) || Ended(dir) {
		t.Fatal("the run did not go on alone")
	}
	var out syncBuffer
	exit, err := (&Executor{}).Attach(context.Background(), spec, 4, &out)
	if err != nil || exit.Code != 5 || out.String() != "two\n" {
		t.Fatalf("attach: exit %+v err %v output %q", exit, err, out.String())
	}
}

// Aborting an attached run stops it, as for a run the follower started.
func TestAbortAfterAttach(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := Spec{Argv: []string{"sh", "-c", "trap 'echo bye; exit 9' TERM; echo up; while :; do sleep 0.05; done"}, Env: os.Environ(),
		Marker: "abort-attach", RunDir: dir, GracePeriod: 2 * time.Second}
	if err := (&Executor{}).startShim(spec, dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var out syncBuffer
	exit, err := (&Executor{}).Attach(ctx, spec, 0, &out)
	if err != nil || !exit.Cancelled || exit.Code != 9 || !strings.Contains(out.String(), "bye") {
		t.Fatalf("exit %+v err %v output %q", exit, err, out.String())
	}
}

// A run no daemon follows any more is stopped by its shim after LostAfter.
func TestShimStopsAnUnfollowedTask(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := Spec{Argv: []string{"sleep", "300"}, Env: os.Environ(), Marker: "lost", RunDir: dir}
	if err := (&Executor{LostAfter: time.Second}).startShim(spec, dir); err != nil {
		t.Fatal(err)
	}
	// The owner is a process that exits at once.
	os.WriteFile(filepath.Join(dir, ownerFile), []byte("999999999"), 0o600)
	deadline := time.Now().Add(20 * time.Second)
	for !Ended(dir) {
		if time.Now().After(deadline) {
			t.Fatal("the unfollowed task still runs")
		}
		time.Sleep(100 * time.Millisecond)
	}
	x, _, _ := readExit(dir)
	if !x.Lost || x.Code >= 0 {
		t.Fatalf("exit = %+v", x)
	}
}
