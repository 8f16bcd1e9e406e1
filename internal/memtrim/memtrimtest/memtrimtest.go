// Package memtrimtest helps tests check that a process of this binary gave
// back its start-up pages (memtrim).
package memtrimtest

import (
	"testing"
	"time"

	"github.com/goclearml/agent/internal/memtrim"
	"github.com/goclearml/agent/internal/testwait"
)

// WaitSettled reads the resident file pages of process pid now, then waits
// up to d until they are under half of that, and fails the test if they
// are not. It returns both figures, in kilobytes.
func WaitSettled(t testing.TB, pid int, d time.Duration) (started, settled int64) {
	t.Helper()
	resident := func() int64 {
		n, err := memtrim.FileResidentKB(pid)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	started = resident()
	if !testwait.For(d, func() bool { settled = resident(); return settled < started/2 }) {
		t.Fatalf("pages of the binary in process %d: %d kB at first, still %d kB after %v", pid, started, settled, d)
	}
	t.Logf("pages of the binary in process %d: %d kB at first, %d kB settled", pid, started, settled)
	return started, settled
}
