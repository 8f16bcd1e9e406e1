package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// The walk down the children files finds what the scan of every process's
// parent finds: the live processes of a tree, its zombies left out.
func TestDescendantsBothWays(t *testing.T) {
	t.Parallel()
	if !childrenFiles() {
		t.Skip("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): only the scan is used")
	}
	// A subshell that becomes "sleep 301" and never reaps its child
	// (a zombie once "sleep 0" ends), and a shell waiting on "sleep 302".
	cmd := exec.Command("sh", "-c", `(sleep 0 & exec sleep 301) & sh -c "sleep 302 & wait" & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	t.Cleanup(func() {
		signalTree(root, syscall.SIGKILL)
		cmd.Process.Kill()
		cmd.Wait()
	})
	holder := func() int { // the "sleep 301" that holds the zombie
		for _, p := range descendantsScan(root) {
			if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); string(cmdline) == "sleep\x00301\x00" {
				return p
			}
		}
		return 0
	}
	testwait.Until(t, 30*time.Second, func() bool {
		h := holder()
		return len(descendantsScan(root)) == 3 && h != 0 && len(childrenOf(h)) == 1 && zombie(childrenOf(h)[0])
	}, "three live processes under the shell, and a zombie")
	down, scan := descendantsDown(root), descendantsScan(root)
	slices.Sort(down)
	slices.Sort(scan)
	if !slices.Equal(down, scan) || len(down) != 3 {
		t.Fatalf("down the children files %v, by scan %v; want the same 3 live processes", down, scan)
	}
	if gone := descendantsDown(1 << 30); len(gone) != 0 {
		t.Fatalf("descendants of a pid that does not exist: %v", gone)
	}
}

func zombie(pid int) bool {
	f, err := statFields(strconv.Itoa(pid))
	return err == nil && len(f) > 0 && strings.HasPrefix(f[0], "Z")
}

// What a task's end costs the shim when the task left nothing behind: one
// look for descendants.
func BenchmarkDescendants(b *testing.B) {
	b.Run("children-files", func(b *testing.B) {
		if !childrenFiles() {
			b.Skip("no children files in /proc")
		}
		for b.Loop() {
			descendantsDown(os.Getpid())
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			descendantsScan(os.Getpid())
		}
	})
}

// A run's processes are found from its shim down, the same ones its
// marker finds, and Usage sums them; a run whose folder is not known is
// found by its marker.
func TestRunProcessesFromTheShim(t *testing.T) {
	t.Parallel()
	if !childrenFiles() {
		t.Skip("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): only the scan is used")
	}
	dir := t.TempDir()
	marker := "run-processes-" + strconv.Itoa(os.Getpid())
	runIn(t, dir, marker, "sleep 303 & sleep 304", 4)
	fromShim, byMarker := runProcesses(dir, marker), findMarked(marker)
	slices.Sort(fromShim)
	slices.Sort(byMarker)
	if !slices.Equal(fromShim, byMarker) {
		t.Fatalf("from the shim %v, by the marker %v; want the same 4 processes", fromShim, byMarker)
	}
	if got := runProcesses("", marker); len(got) != 4 {
		t.Fatalf("without the run's folder: %v, want its 4 processes", got)
	}
	if _, rss := Usage(dir, marker); rss <= 0 {
		t.Fatalf("Usage: resident memory %d, want > 0", rss)
	}
	if got := runProcesses(t.TempDir(), "no such marker"); len(got) != 0 {
		t.Fatalf("a folder without a shim and an unknown marker: %v", got)
	}
}

// What the daemon's usage sample of one task costs: its processes found
// from the shim, against a read of every process's environment.
func BenchmarkRunProcesses(b *testing.B) {
	dir := b.TempDir()
	runIn(b, dir, "bench-run-processes", "sleep 305", 3)
	b.Run("from-the-shim", func(b *testing.B) {
		for b.Loop() {
			runProcesses(dir, "bench-run-processes")
		}
	})
	b.Run("environment-scan", func(b *testing.B) {
		for b.Loop() {
			findMarked("bench-run-processes")
		}
	})
}

// runIn runs "children; echo up; wait" under an executor in dir until the
// test ends, and waits until the run has its processes (the shim among
// them) and has printed "up".
func runIn(tb testing.TB, dir, marker, children string, processes int) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var out testwait.Output
	go func() {
		defer close(done)
		(&Executor{}).Run(ctx, Spec{Argv: []string{"sh", "-c", children + " & echo up; wait"}, Env: os.Environ(),
			Marker: marker, RunDir: dir, GracePeriod: time.Second}, &out)
	}()
	tb.Cleanup(func() { cancel(); <-done })
	testwait.Until(tb, 30*time.Second, func() bool {
		return strings.Contains(out.String(), "up") && len(findMarked(marker)) == processes
	}, fmt.Sprintf("the run's %d processes", processes))
}
