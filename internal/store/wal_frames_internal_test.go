package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// BenchmarkWALFrames counts the pages an enqueue and a pop write to
// SQLite's write-ahead log, each alone in its commit: a commit writes
// every page it changed as a frame (a header and the page, two writes).
// The enqueue is the task's write (queued, a new last update) and its
// queue entry; the pop takes the entry and reads the task's status.
//
//	go test ./internal/store -run '^$' -bench WALFrames -benchtime 200x
func BenchmarkWALFrames(b *testing.B) {
	path := filepath.Join(b.TempDir(), "frames.db")
	st, err := openSQLite(context.Background(), path, "NORMAL")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	ctx := context.Background()
	now := api.Now()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
		if err := st.Update(ctx, func(tx Tx) error {
			return tx.PutTask(&api.Task{ID: ids[i], Name: "frames", Company: "c", Project: "p", Status: api.StatusCreated,
				Created: &now, LastUpdate: &now})
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Update(ctx, func(tx Tx) error { return tx.PutQueue(&api.Queue{ID: "q", Name: "q", Company: "c"}) }); err != nil {
		b.Fatal(err)
	}
	// The log is emptied and then only grows: a frame is appended for
	// every page of every commit.
	if _, err := s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	if _, err := s.write.Exec(`PRAGMA wal_autocheckpoint = 0`); err != nil {
		b.Fatal(err)
	}
	var pageSize int64
	if err := s.write.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		b.Fatal(err)
	}
	frames := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil || fi.Size() < 32 {
			return 0
		}
		return (fi.Size() - 32) / (24 + pageSize) // the log's header, then frames
	}
	var write, entry, pop int64
	b.ResetTimer()
	for i := range b.N {
		f0 := frames()
		if err := st.Update(ctx, func(tx Tx) error {
			t, err := tx.Task(ids[i])
			if err != nil {
				return err
			}
			later := api.Now()
			t.Status, t.LastUpdate = api.StatusQueued, &later
			return tx.PutTask(t)
		}); err != nil {
			b.Fatal(err)
		}
		f1 := frames()
		if err := st.Update(ctx, func(tx Tx) error {
			_, err := tx.AddEntry("q", ids[i], now)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		f2 := frames()
		if err := st.Update(ctx, func(tx Tx) error {
			e, err := tx.PopEntry("q")
			if err != nil || e == nil {
				return fmt.Errorf("popping: entry %v, %w", e, err)
			}
			_, _, err = tx.TaskStatus(e.Task)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		f3 := frames()
		write, entry, pop = write+f1-f0, entry+f2-f1, pop+f3-f2
	}
	n := float64(b.N)
	b.ReportMetric(float64(write)/n, "task-write-frames/op")
	b.ReportMetric(float64(entry)/n, "entry-frames/op")
	b.ReportMetric(float64(pop)/n, "pop-frames/op")
}
