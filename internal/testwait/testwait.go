// Package testwait waits, in tests, for a condition that another goroutine
// or process brings about: a file, a log line, a process state, a server's
// answer. It polls the condition itself, never sleeps a fixed time in the
// hope that the condition holds by then, so a loaded machine only makes
// the wait longer, not the test red.
//
// Prefer a channel or a callback from the code under test where there is
// one; poll where the state belongs to another process.
package testwait

import (
	"testing"
	"time"
)

// Poll intervals of Until: the first check is immediate, the next ones
// back off from minInterval to maxInterval, so that a condition that holds
// soon is seen soon and an expensive one (an API call, a process start) is
// not run in a tight loop.
const (
	minInterval = time.Millisecond
	maxInterval = 100 * time.Millisecond
)

// Until returns once cond returns true, and fails the test (naming what it
// waited for) if timeout passes first. The timeout is a fail-safe, not a
// guess at how long things take: give it room.
func Until(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !For(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// For is Until for a caller that reports the failure itself (with what it
// knows: a process's output): it says whether cond held before timeout.
func For(timeout time.Duration, cond func() bool) bool {
	return poll(timeout, minInterval, maxInterval, cond)
}

// Every is Until with a fixed interval between checks, for benchmarks
// that time what they wait for.
func Every(t testing.TB, interval, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !poll(timeout, interval, interval, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// poll reports whether cond held before timeout; cond is checked once more
// at the deadline.
func poll(timeout, first, most time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	interval := first
	next := time.NewTimer(interval)
	defer next.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-next.C:
			if cond() {
				return true
			}
			interval = min(2*interval, most)
			next.Reset(interval)
		}
	}
}
