package executor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/memtrim/memtrimtest"
	"github.com/goclearml/agent/internal/testwait"
)

// sparePid is the pid of e's spare supervisor, 0 when it has none.
func sparePid(e *Executor) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spare == nil {
		return 0
	}
	return e.spare.proc.Pid
}

// A run takes the spare supervisor: the spare gets the run's environment,
// working folder and output, and shows the command line and marker of a
// supervisor started for the run; the task (plain, or set up in the
// supervisor) runs and its exit status is the run's. Once the run is over
// a new spare waits, and Close lets it go.
func TestSpareTakesTheRun(t *testing.T) {
	t.Parallel()
	// The task reports what its parent, the supervisor, shows in /proc.
	script := `echo "env $SPARE_TEST pwd $(pwd)"; tr '\0' '\n' < /proc/$PPID/cmdline | head -3 | tr '\n' ' '; echo;` +
		` tr '\0' '\n' < /proc/$PPID/environ | grep -c "^` + RunMarkerEnv + `=spare-$SPARE_TEST$"; exit 3`
	for _, tc := range []struct {
		name    string
		argv    []string
		prepped bool
	}{
		{"task", []string{"sh", "-c", script}, false},
		{"setup", []string{"prep", "ok", script}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := &Executor{}
			e.KeepSpare()
			defer e.Close()
			first := sparePid(e)
			if first == 0 {
				t.Fatal("no spare supervisor after KeepSpare")
			}
			work, runDir := t.TempDir(), filepath.Join(t.TempDir(), "run")
			var out testwait.Output
			spec := Spec{Argv: tc.argv, Env: append(os.Environ(), "SPARE_TEST="+tc.name), Dir: work,
				Marker: "spare-" + tc.name, RunDir: runDir}
			exit, err := e.Run(context.Background(), spec, &out)
			if err != nil || exit.Code != 3 {
				t.Fatalf("Run: exit %+v, err %v; output %q", exit, err, out.String())
			}
			var si shimInfo
			if err := readJSON(filepath.Join(runDir, shimFile), &si); err != nil || si.ShimPID != first {
				t.Fatalf("the run's supervisor is %d (%v), not the spare %d", si.ShimPID, err, first)
			}
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			want := "env " + tc.name + " pwd " + work + "\n" + self + " " + ShimCommand + " " + runDir + " \n1\n"
			if tc.prepped {
				want = "prepared\n" + want
			}
			if out.String() != want {
				t.Fatalf("output %q, want %q", out.String(), want)
			}
			next := sparePid(e)
			if next == 0 || next == first {
				t.Fatalf("no new spare after the run (had %d, now %d)", first, next)
			}
			e.Close()
			if _, ok := procStart(next); ok {
				t.Fatalf("spare %d still runs after Close", next)
			}
			if _, err := e.Run(context.Background(), Spec{Argv: []string{"true"}, Env: os.Environ(), Marker: "after-close"}, &out); err != nil || sparePid(e) != 0 {
				t.Fatalf("after Close: Run %v, spare %d", err, sparePid(e))
			}
		})
	}
}

// A run whose spare died, or whose working folder is missing, is run or
// refused as without a spare.
func TestSpareFailures(t *testing.T) {
	t.Parallel()
	t.Run("spare died", func(t *testing.T) {
		t.Parallel()
		e := &Executor{}
		e.KeepSpare()
		defer e.Close()
		pid := sparePid(e)
		syscall.Kill(pid, syscall.SIGKILL)
		testwait.Until(t, 30*time.Second, func() bool { _, ok := procStart(pid); return !ok }, "the spare to die")
		var out testwait.Output
		exit, err := e.Run(context.Background(), Spec{Argv: []string{"sh", "-c", "echo ran"}, Env: os.Environ(), Marker: "spare-died"}, &out)
		if err != nil || exit.Code != 0 || out.String() != "ran\n" {
			t.Fatalf("Run: exit %+v, err %v, output %q", exit, err, out.String())
		}
		if next := sparePid(e); next == 0 || next == pid {
			t.Fatalf("no new spare after the run (now %d)", next)
		}
	})
	t.Run("spare exits without the run", func(t *testing.T) {
		t.Parallel()
		// A spare that reads its run and exits without recording it: the
		// run gets a supervisor of its own.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		proc, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "cat > /dev/null"}, &os.ProcAttr{Files: []*os.File{r, nil, nil}})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		sp := &spare{proc: proc, w: w, done: make(chan struct{})}
		go func() {
			proc.Wait()
			close(sp.done)
		}()
		e := &Executor{spare: sp}
		var out testwait.Output
		exit, err := e.Run(context.Background(), Spec{Argv: []string{"sh", "-c", "echo ran"}, Env: os.Environ(), Marker: "spare-quit"}, &out)
		if err != nil || exit.Code != 0 || out.String() != "ran\n" {
			t.Fatalf("Run: exit %+v, err %v, output %q", exit, err, out.String())
		}
		select {
		case <-sp.done:
		default:
			t.Fatal("the spare that quit was not reaped")
		}
	})
	for _, keep := range []bool{false, true} {
		t.Run("missing folder, spare "+strconv.FormatBool(keep), func(t *testing.T) {
			t.Parallel()
			e := &Executor{}
			if keep {
				e.KeepSpare()
				defer e.Close()
			}
			missing := filepath.Join(t.TempDir(), "missing")
			var out testwait.Output
			_, err := e.Run(context.Background(), Spec{Argv: []string{"true"}, Env: os.Environ(), Dir: missing, Marker: "spare-missing"}, &out)
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Fatalf("Run: %v, want an error naming %s", err, missing)
			}
		})
	}
}

// A spare that waits gives back the pages of the binary its start touched.
func TestSpareSettles(t *testing.T) {
	t.Parallel()
	e := &Executor{}
	e.KeepSpare()
	defer e.Close()
	pid := sparePid(e)
	// Waiting: one of its threads sleeps in a read of the pipe (the
	// kernel's pipe_read, anon_pipe_read since Linux 6.14).
	testwait.Until(t, 30*time.Second, func() bool {
		threads, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/wchan")
		for _, th := range threads {
			if w, _ := os.ReadFile(th); strings.HasSuffix(string(w), "pipe_read") {
				return true
			}
		}
		return false
	}, "the spare to wait for its run")
	memtrimtest.WaitSettled(t, pid, 2*time.Minute)
}

func TestPackStrings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		items []string
		n     int
		want  string
	}{
		{[]string{"ab", "c"}, 8, "ab\x00c\x00\x00\x00\x00"},
		{[]string{"ab", "cdef"}, 6, "ab\x00cd\x00"},
		{[]string{"abcdef"}, 4, "abc\x00"},
		{[]string{"ab", "c", "d"}, 4, "ab\x00\x00"},
		{nil, 3, "\x00\x00\x00"},
	} {
		if got := string(packStrings(tc.items, tc.n)); got != tc.want {
			t.Errorf("packStrings(%q, %d) = %q, want %q", tc.items, tc.n, got, tc.want)
		}
	}
}

// ShimAlive knows a shim by its pid and start time: a pid given to another
// process, or a process gone, is not the shim.
func TestShimAliveByStartTime(t *testing.T) {
	t.Parallel()
	self, ok := procStart(os.Getpid())
	if !ok {
		t.Fatal("no start time for this process")
	}
	for _, tc := range []struct {
		name string
		info shimInfo
		want bool
	}{
		{"this process", shimInfo{ShimPID: os.Getpid(), ShimStart: self}, true},
		{"pid reused", shimInfo{ShimPID: os.Getpid(), ShimStart: self + 1}, false},
		{"gone", shimInfo{ShimPID: 1 << 30, ShimStart: self}, false},
		{"older shim, not one", shimInfo{ShimPID: os.Getpid()}, false},
	} {
		dir := t.TempDir()
		if err := writeJSON(filepath.Join(dir, shimFile), tc.info); err != nil {
			t.Fatal(err)
		}
		if got := ShimAlive(dir); got != tc.want {
			t.Errorf("%s: ShimAlive = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The shim knows its daemon by pid and start time: a pid given to another
// process is no owner; an owner file without a start time (an earlier
// daemon's) is checked by pid alone.
func TestOwnerAlive(t *testing.T) {
	t.Parallel()
	self, ok := procStart(os.Getpid())
	if !ok {
		t.Fatal("no start time for this process")
	}
	pid := strconv.Itoa(os.Getpid())
	start := strconv.FormatUint(self, 10)
	for _, tc := range []struct {
		name         string
		owner, start string // "" for no file
		want         bool
	}{
		{"this process", pid, start, true},
		{"pid reused", pid, strconv.FormatUint(self+1, 10), false},
		{"gone", strconv.Itoa(1 << 30), start, false},
		{"earlier daemon, alive", pid, "", true},
		{"earlier daemon, gone", strconv.Itoa(1 << 30), "", false},
		{"no owner", "", "", false},
	} {
		dir := t.TempDir()
		for name, v := range map[string]string{ownerFile: tc.owner, ownerStartFile: tc.start} {
			if v != "" {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := ownerAlive(dir); got != tc.want {
			t.Errorf("%s: ownerAlive = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Own writes both, and they name this process.
	dir := t.TempDir()
	if err := (&Executor{}).Own(dir); err != nil || !ownerAlive(dir) {
		t.Fatalf("after Own: %v, alive %v", err, ownerAlive(dir))
	}
}
