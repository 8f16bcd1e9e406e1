package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/store"
)

func backends(t *testing.T) map[string]string {
	return map[string]string{
		"sqlite":   filepath.Join(t.TempDir(), "store.db"),
		"postgres": pgtest.NewDatabase(t),
	}
}

// eachBackend runs fn as a subtest on a fresh SQLite file and a fresh
// PostgreSQL database.
func eachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) { fn(t, dsn) })
	}
}

// open opens a store or fails the test.
func open(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// putTasks writes tasks in one transaction or fails the test.
func putTasks(t *testing.T, st store.Store, tasks ...*api.Task) {
	t.Helper()
	err := st.Update(context.Background(), func(tx store.Tx) error {
		for _, task := range tasks {
			if err := tx.PutTask(task); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReopenKeepsData: migrations run once; a reopened store has the data.
func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		now := api.Now()
		if err := st.Update(ctx, func(tx store.Tx) error {
			return tx.PutTask(&api.Task{ID: "t1", Name: "kept", Company: "c", Status: api.StatusCreated, LastUpdate: &now})
		}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		st, err = store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		defer st.Close()
		err = st.View(ctx, func(tx store.Tx) error {
			got, err := tx.Task("t1")
			if err == nil && got.Name != "kept" {
				err = fmt.Errorf("task = %+v", got)
			}
			if _, err2 := tx.Task("missing"); !errors.Is(err2, store.ErrNotFound) {
				return fmt.Errorf("missing task: %v", err2)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestUpdateRollsBack: a failing Update leaves nothing behind, also when
// it ran together with others (SQLite's group commit).
func TestUpdateRollsBack(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		defer st.Close()
		boom := errors.New("boom")
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				err := st.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.AddEntry("q", fmt.Sprintf("t%d", i), api.Now()); err != nil {
						return err
					}
					if i%2 == 1 {
						return boom
					}
					return nil
				})
				if (i%2 == 1) != errors.Is(err, boom) {
					t.Errorf("update %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		var n int
		st.View(ctx, func(tx store.Tx) error { n, err = tx.CountEntries("q"); return err })
		if n != 8 {
			t.Fatalf("%d entries, want the 8 of the successful updates", n)
		}
	})
}

// TestPopEntryFIFOExactlyOnce: concurrent pops take every entry once, in
// order per popper.
func TestPopEntryFIFOExactlyOnce(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		defer st.Close()
		const n = 300
		err = st.Update(ctx, func(tx store.Tx) error {
			for i := range n {
				if _, err := tx.AddEntry("q", fmt.Sprintf("%04d", i), api.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				last := ""
				for {
					var e *api.QueueEntry
					if err := st.Update(ctx, func(tx store.Tx) error { var err error; e, err = tx.PopEntry("q"); return err }); err != nil {
						t.Error(err)
						return
					}
					if e == nil {
						return
					}
					if e.Task <= last {
						t.Errorf("popped %s after %s", e.Task, last)
					}
					last = e.Task
					mu.Lock()
					seen[e.Task]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("popped %d distinct entries, want %d", len(seen), n)
		}
		for k, v := range seen {
			if v != 1 {
				t.Fatalf("entry %s popped %d times", k, v)
			}
		}
	})
}
