package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// The host-wide lock follows upstream's protocol, so that our daemons and
// upstream agents on one host exclude each other: the lock is the file's
// existence, held only during registration. A file an upstream agent holds
// is waited for; one left older than lockWait is cleared at once; none is
// left behind (an upstream agent would take it for a held lock and wait
// 10 s on every start).
func TestHostLockUpstreamProtocol(t *testing.T) {
	t.Parallel()
	t.Run("none left behind", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		in, err := Register(IdentityOptions{WorkerName: "host", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Release()
		if _, err := os.Lstat(filepath.Join(dir, lockName)); !os.IsNotExist(err) {
			t.Fatalf("the lock file is left after registration: %v", err)
		}
	})
	t.Run("an upstream holder is waited for", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		lock := filepath.Join(dir, lockName)
		// What upstream writes: bytes(os.getpid()), that many zero bytes.
		if err := os.WriteFile(lock, make([]byte, 4), 0o644); err != nil {
			t.Fatal(err)
		}
		waited := make(chan struct{}, 1)
		hook := func() {
			select {
			case waited <- struct{}{}:
			default:
			}
		}
		lockWaiting.Store(&hook)
		t.Cleanup(func() { lockWaiting.Store(nil) })
		done := make(chan error, 1)
		var in *Instance
		go func() {
			var err error
			in, err = Register(IdentityOptions{WorkerName: "host", Dir: dir})
			done <- err
		}()
		// While the file is there (upstream registering) ours waits.
		select {
		case err := <-done:
			t.Fatalf("registered while another agent held the lock: %v", err)
		case <-waited:
		}
		if err := os.Remove(lock); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		in.Release()
	})
	t.Run("a file left behind is cleared", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		lock := filepath.Join(dir, lockName)
		if err := os.WriteFile(lock, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * lockWait)
		if err := os.Chtimes(lock, old, old); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		in, err := Register(IdentityOptions{WorkerName: "host", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		in.Release()
		if time.Since(start) >= lockWait {
			t.Fatalf("a stale lock file was waited for (%v)", time.Since(start))
		}
		if !testwait.For(time.Second, func() bool { _, err := os.Lstat(lock); return os.IsNotExist(err) }) {
			t.Fatal("the lock file is left")
		}
	})
}
