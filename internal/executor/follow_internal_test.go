package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWaitRecorded: a start's wait ends once the supervisor has recorded
// itself or the run's end, whether that happens before the wait or while
// it waits, and fails when the supervisor exits first; with the run
// folder's watch, and without one (the folder read every 2 ms).
func TestWaitRecorded(t *testing.T) {
	t.Parallel()
	record := func(dir, name string) error {
		return writeFileAtomic(filepath.Join(dir, name), []byte(`{"shim_pid": 1}`))
	}
	cases := []struct {
		name string
		// before runs before the wait; during, in a goroutine beside it.
		before, during func(dir string, exited chan struct{}) error
		want           error
	}{
		{name: "recorded before", before: func(dir string, _ chan struct{}) error { return record(dir, shimFile) }},
		{name: "recorded during", during: func(dir string, _ chan struct{}) error { return record(dir, shimFile) }},
		{name: "ended during", during: func(dir string, _ chan struct{}) error { return record(dir, exitFile) }},
		{name: "recorded, then exited", during: func(dir string, exited chan struct{}) error {
			err := record(dir, shimFile)
			close(exited)
			return err
		}},
		{name: "exited without a record", want: errShimExited, during: func(dir string, exited chan struct{}) error {
			// A partial record is no record.
			err := os.WriteFile(filepath.Join(dir, shimFile), []byte(`{"shim_`), 0o600)
			close(exited)
			return err
		}},
	}
	for _, c := range cases {
		for _, watched := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, watched %v", c.name, watched), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				var w *watcher
				if watched {
					var err error
					if w, err = newWatcher(dir); err != nil {
						t.Fatal(err)
					}
					defer w.close()
				}
				exited := make(chan struct{})
				if c.before != nil {
					if err := c.before(dir, exited); err != nil {
						t.Fatal(err)
					}
				}
				done := make(chan error, 1)
				if c.during != nil {
					go func() { done <- c.during(dir, exited) }()
				} else {
					done <- nil
				}
				err := waitRecorded(dir, exited, w)
				if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
					t.Errorf("waitRecorded: %v, want %v", err, c.want)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
