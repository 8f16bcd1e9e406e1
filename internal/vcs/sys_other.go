//go:build !unix

package vcs

import (
	"context"
	"os/exec"
	"sync"
	"time"
)

// Without flock, mirrors are only protected between goroutines of this
// process: one channel-based mutex per lock path.
var (
	locksMu sync.Mutex
	locks   = map[string]chan struct{}{}
)

func lockFile(ctx context.Context, path string, timeout time.Duration) (func(), error) {
	locksMu.Lock()
	ch, ok := locks[path]
	if !ok {
		ch = make(chan struct{}, 1)
		locks[path] = ch
	}
	locksMu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-t.C:
		return nil, errLockTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func setProcessGroup(*exec.Cmd) {}
