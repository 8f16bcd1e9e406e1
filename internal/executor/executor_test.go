package executor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

func run(t *testing.T, ctx context.Context, script string, grace time.Duration) (Exit, string) {
	t.Helper()
	r := startRun(t, ctx, script, grace)
	return r.wait(t)
}

// running is a Run in progress, started by startRun.
type running struct {
	out    testwait.Output
	marker string
	done   chan struct{}
	exit   Exit
	err    error
}

// startRun runs script under the executor in the background.
func startRun(t *testing.T, ctx context.Context, script string, grace time.Duration) *running {
	r := &running{marker: strings.ReplaceAll(t.Name(), "/", "_"), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.exit, r.err = (&Executor{}).Run(ctx, Spec{Argv: []string{"sh", "-c", script}, Env: os.Environ(), Marker: r.marker, GracePeriod: grace}, &r.out)
	}()
	return r
}

// waitOutput waits until the run has printed want.
func (r *running) waitOutput(t *testing.T, want string) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() bool { return strings.Contains(r.out.String(), want) }, fmt.Sprintf("the task to print %q", want))
}

// wait returns how the run ended and its output, and checks that none of
// its processes is left.
func (r *running) wait(t *testing.T) (Exit, string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the run did not end; output %q", r.out.String())
	}
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	if left := findMarked(r.marker); len(left) > 0 {
		t.Fatalf("processes of the run survived: %v", left)
	}
	return r.exit, r.out.String()
}

func TestExitCodesAndOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script string
		code   int
		out    string
	}{
		{"echo hello; echo err >&2; exit 0", 0, "hello\nerr\n"},
		{"echo failing; exit 3", 3, "failing\n"},
		{"kill -9 $$", -9, ""},
		{"kill -INT $$", -2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.script, func(t *testing.T) {
			t.Parallel()
			exit, out := run(t, context.Background(), tc.script, time.Second)
			if exit.Code != tc.code || out != tc.out || exit.Cancelled {
				t.Fatalf("exit %+v output %q, want code %d output %q", exit, out, tc.code, tc.out)
			}
		})
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	_, err := (&Executor{}).Run(context.Background(), Spec{Argv: []string{"/nonexistent/binary"}, Marker: "x"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/binary") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelGracefulThenForced(t *testing.T) {
	t.Parallel()
	t.Run("honours SIGTERM", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// (Exit code 7 shows the trap ran, before the 5 s grace period's SIGKILL.)
		r := startRun(t, ctx, "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done", 5*time.Second)
		r.waitOutput(t, "ready")
		cancel()
		exit, out := r.wait(t)
		if !exit.Cancelled || exit.Code != 7 || !strings.Contains(out, "got TERM") {
			t.Fatalf("exit %+v output %q", exit, out)
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := startRun(t, ctx, "trap '' TERM; echo ready; while :; do sleep 0.05; done", 500*time.Millisecond)
		r.waitOutput(t, "ready")
		cancelled := time.Now()
		cancel()
		exit, _ := r.wait(t)
		if took := time.Since(cancelled); !exit.Cancelled || exit.Signal != syscall.SIGKILL || took < 500*time.Millisecond {
			t.Fatalf("exit %+v %v after the cancel, want SIGKILL after the 500ms grace period", exit, took)
		}
	})
}

// TestAbortKillsEveryDescendant: children, grandchildren and a
// double-forked daemon in its own session all go.
func TestAbortKillsEveryDescendant(t *testing.T) {
	t.Parallel()
	pidFile := t.TempDir() + "/pids"
	script := `
sleep 300 & echo $! >> ` + pidFile + `
sh -c 'sleep 301 & echo $! >> ` + pidFile + `; wait' &
setsid sh -c 'trap "" TERM; sleep 302 & echo $! >> ` + pidFile + `; wait' &
echo started
wait`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := startRun(t, ctx, script, time.Second)
	r.waitOutput(t, "started")
	testwait.Until(t, 30*time.Second, func() bool {
		raw, _ := os.ReadFile(pidFile)
		return len(strings.Fields(string(raw))) == 3 && strings.HasSuffix(string(raw), "\n")
	}, "the three background pids")
	cancel()
	exit, out := r.wait(t)
	if !exit.Cancelled || !strings.Contains(out, "started") {
		t.Fatalf("exit %+v output %q", exit, out)
	}
	raw, _ := os.ReadFile(pidFile)
	pids := strings.Fields(string(raw))
	if len(pids) != 3 {
		t.Fatalf("expected 3 background pids, got %q", raw)
	}
	for _, p := range pids {
		if _, err := os.Stat("/proc/" + p + "/environ"); err == nil {
			if env, _ := os.ReadFile("/proc/" + p + "/environ"); len(env) > 0 {
				t.Errorf("process %s survived the abort", p)
			}
		}
	}
}

// TestLeftoversAfterNormalExit: a task that exits leaving background
// processes does not leak them.
func TestLeftoversAfterNormalExit(t *testing.T) {
	t.Parallel()
	exit, out := run(t, context.Background(), "sleep 300 & setsid sleep 301 & echo done", time.Second)
	if exit.Code != 0 || out != "done\n" {
		t.Fatalf("exit %+v output %q", exit, out)
	}
}
