package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// waiting returns how many acquires wait on g.
func (g *bodyGate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters.Len()
}

// waitFor polls until g has n waiters.
func waitFor(t *testing.T, g *bodyGate, n int) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() bool { return g.waiting() == n }, fmt.Sprintf("%d waiters", n))
}

func TestBodyGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := &bodyGate{budget: 10}
	got, err := g.acquire(ctx, 6, time.Minute)
	if err != nil || got != 6 {
		t.Fatalf("acquire(6) = %d, %v", got, err)
	}
	// More than the budget takes all of it.
	big := make(chan int64)
	go func() { n, _ := g.acquire(ctx, 100, time.Minute); big <- n }()
	waitFor(t, g, 1)
	// FIFO: a small acquire that would fit waits behind the big one.
	small := make(chan int64)
	go func() { n, _ := g.acquire(ctx, 1, time.Minute); small <- n }()
	waitFor(t, g, 2)
	// A waiter that gives up (timeout, cancelled context) leaves the line.
	if _, err := g.acquire(ctx, 1, time.Millisecond); !errors.Is(err, errBusy) {
		t.Fatalf("acquire with a short wait: %v, want errBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.acquire(cctx, 1, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context: %v", err)
	}
	if g.waiting() != 2 {
		t.Fatalf("%d waiters after two gave up, want 2", g.waiting())
	}
	if g.release(6) {
		t.Fatal("release reported idle with waiters")
	}
	if n := <-big; n != 10 {
		t.Fatalf("big acquire got %d, want the whole budget", n)
	}
	waitFor(t, g, 1)
	if g.release(10) {
		t.Fatal("release reported idle while the small one holds bytes")
	}
	if n := <-small; n != 1 {
		t.Fatalf("small acquire got %d", n)
	}
	if !g.release(1) || !g.idle() {
		t.Fatal("gate not idle after the last release")
	}
}
