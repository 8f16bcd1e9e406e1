package executor

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the copy goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, ctx context.Context, script string, grace time.Duration) (Exit, string) {
	t.Helper()
	var out syncBuffer
	marker := strings.ReplaceAll(t.Name(), "/", "_")
	exit, err := (&Executor{}).Run(ctx, Spec{Argv: []string{"sh", "-c", script}, Env: os.Environ(), Marker: marker, GracePeriod: grace}, &out)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if left := findMarked(marker); len(left) > 0 {
		t.Fatalf("processes of the run survived: %v", left)
	}
	return exit, out.String()
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
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		exit, out := run(t, ctx, "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done", 5*time.Second)
		if !exit.Cancelled || exit.Code != 7 || !strings.Contains(out, "got TERM") || time.Since(start) > 4*time.Second {
			t.Fatalf("exit %+v output %q after %v", exit, out, time.Since(start))
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		exit, _ := run(t, ctx, "trap '' TERM; while :; do sleep 0.05; done", 500*time.Millisecond)
		if !exit.Cancelled || exit.Signal != syscall.SIGKILL || time.Since(start) < 700*time.Millisecond {
			t.Fatalf("exit %+v after %v", exit, time.Since(start))
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
	time.AfterFunc(500*time.Millisecond, cancel)
	exit, out := run(t, ctx, script, time.Second)
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
