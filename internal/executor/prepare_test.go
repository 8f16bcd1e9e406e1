package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testPreparer runs `prep MODE [SCRIPT]` in the shim (the tests' shim is
// the test binary):
//
//	ok SCRIPT   prints "prepared", then the task is sh -c SCRIPT
//	fail        prints "setup failed" and ends with exit status 3
//	block       starts a sleep it leaves running, prints "preparing",
//	            waits for the stop and ends with exit status 143
//	panic       panics
//	stubborn    prints "preparing" and waits for a subprocess that
//	            ignores SIGTERM, whatever the context says
//	fifo F S    prints "preparing", waits until the named pipe F is
//	            opened for writing and closed (or the stop), then the
//	            task is sh -c S
//
// Anything else runs as a process of its own.
func testPreparer(argv []string) (Prepare, bool) {
	if len(argv) < 2 || argv[0] != "prep" {
		return nil, false
	}
	return func(ctx context.Context, out *os.File) (Launch, error) {
		switch argv[1] {
		case "ok":
			fmt.Fprintln(out, "prepared")
			return Launch{Path: "/bin/sh", Argv: []string{"sh", "-c", argv[2]}, Env: os.Environ()}, nil
		case "fail":
			fmt.Fprintln(out, "setup failed")
			return Launch{}, exitCodeError(3)
		case "block":
			sleep := exec.Command("sleep", "300")
			if err := sleep.Start(); err != nil {
				return Launch{}, err
			}
			fmt.Fprintf(out, "preparing %d\n", sleep.Process.Pid)
			<-ctx.Done()
			return Launch{}, exitCodeError(143)
		case "panic":
			panic("the setup broke")
		case "stubborn":
			sh := exec.Command("sh", "-c", "trap '' TERM; echo preparing; sleep 300")
			sh.Stdout = out
			if err := sh.Run(); err != nil {
				return Launch{}, fmt.Errorf("preparing: %w", err)
			}
			return Launch{}, errors.New("the stubborn setup ended")
		case "fifo":
			fmt.Fprintln(out, "preparing")
			opened := make(chan error, 1)
			go func() {
				f, err := os.Open(argv[2])
				if err == nil {
					_, err = f.Read(make([]byte, 1)) // EOF once the writer closes
					f.Close()
				}
				opened <- err
			}()
			select {
			case <-opened:
			case <-ctx.Done():
				return Launch{}, exitCodeError(143)
			}
			return Launch{Path: "/bin/sh", Argv: []string{"sh", "-c", argv[3]}, Env: os.Environ()}, nil
		}
		return Launch{}, fmt.Errorf("unknown mode %q", argv[1])
	}, true
}

// startPrep runs `prep ARGS...` under the executor in the background.
func startPrep(t *testing.T, ctx context.Context, grace time.Duration, args ...string) *running {
	r := &running{marker: strings.ReplaceAll(t.Name(), "/", "_"), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.exit, r.err = (&Executor{}).Run(ctx, Spec{Argv: append([]string{"prep"}, args...), Env: os.Environ(), Marker: r.marker, GracePeriod: grace}, &r.out)
	}()
	return r
}

// A command prepared in the shim: its output comes first, then the task's,
// and the task's exit status is the run's; a failed setup ends the run
// with its own status.
func TestPrepareInShim(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"ok", "echo task; echo err >&2; exit 4"}, 4, "prepared\ntask\nerr\n"},
		{[]string{"ok", "kill -9 $$"}, -9, "prepared\n"},
		{[]string{"fail"}, 3, "setup failed\n"},
		{[]string{"bogus"}, 1, ""},
		{[]string{"panic"}, 2, "panic: the setup broke\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			exit, out := startPrep(t, context.Background(), time.Second, tc.args...).wait(t)
			if tc.args[0] == "panic" {
				out, _, _ = strings.Cut(out, "\n\n") // the stack follows
				out += "\n"
			}
			if exit.Code != tc.code || out != tc.out || exit.Cancelled {
				t.Fatalf("exit %+v output %q, want code %d output %q", exit, out, tc.code, tc.out)
			}
		})
	}
}

// Stopping a run while the shim prepares it stops the setup and every
// process it started: at once when the setup honours the stop (its status,
// 143), after the grace period (SIGKILL) when it does not.
func TestStopDuringPrepare(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode  string
		grace time.Duration
		code  int
		sig   syscall.Signal
	}{
		{"block", 10 * time.Second, 143, 0},
		{"stubborn", 300 * time.Millisecond, -int(syscall.SIGKILL), syscall.SIGKILL},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := startPrep(t, ctx, tc.grace, tc.mode)
			r.waitOutput(t, "preparing")
			cancel()
			exit, out := r.wait(t)
			if !exit.Cancelled || exit.Code != tc.code || exit.Signal != tc.sig {
				t.Fatalf("exit %+v, want status %d, signal %v, cancelled", exit, tc.code, tc.sig)
			}
			// r.wait checked that no process of the run is left; the
			// setup's own sleep too, by its pid.
			var pid int
			if _, err := fmt.Sscanf(out, "preparing %d", &pid); err == nil && alive(fmt.Sprint(pid)) {
				t.Fatalf("the setup's sleep (pid %d) survived the stop", pid)
			}
		})
	}
}
