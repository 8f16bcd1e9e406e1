package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/store"
)

// BenchmarkStoreEnqueuePop measures the store operations of one enqueue
// (lock the task, write it, add the entry) and one dequeue (pop the head,
// read the task status) without HTTP, with 8 concurrent callers.
func BenchmarkStoreEnqueuePop(b *testing.B) {
	now := api.Now()
	onEachTask(b, api.StatusCreated, func(st store.Store, id string) error {
		ctx := context.Background()
		err := st.Update(ctx, func(tx store.Tx) error {
			t, err := tx.Task(id)
			if err != nil {
				return err
			}
			t.Status = api.StatusQueued
			if err := tx.PutTask(t); err != nil {
				return err
			}
			_, err = tx.AddEntry("q", id, now)
			return err
		})
		for popped := false; err == nil && !popped; {
			err = st.Update(ctx, func(tx store.Tx) error {
				e, err := tx.PopEntry("q")
				if err != nil || e == nil {
					return err
				}
				popped = true
				_, _, err = tx.TaskStatus(e.Task)
				return err
			})
		}
		return err
	})
}

// BenchmarkStoreTaskWrite measures the commonest task write while a task
// runs: read it, change fields that are not indexed (its last update, a
// runtime property), write it back; 8 concurrent callers, each task
// written once.
func BenchmarkStoreTaskWrite(b *testing.B) {
	onEachTask(b, api.StatusInProgress, func(st store.Store, id string) error {
		return st.Update(context.Background(), func(tx store.Tx) error {
			t, err := tx.Task(id)
			if err != nil {
				return err
			}
			later := api.Now()
			t.LastUpdate = &later
			t.Runtime = map[string]any{"progress": 50}
			return tx.PutTask(t)
		})
	})
}

// onEachTask stores b.N tasks of the status on each back end, then times
// op run once on each of them by 8 concurrent callers.
func onEachTask(b *testing.B, status string, op func(st store.Store, id string) error) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "bench.db")
			if backend == "postgres" {
				dsn = pgtest.NewDatabase(b)
			}
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			now := api.Now()
			ids := make(chan string, b.N)
			for i := range b.N {
				id := fmt.Sprintf("%032x", i+1)
				err := st.Update(context.Background(), func(tx store.Tx) error {
					return tx.PutTask(&api.Task{ID: id, Name: "bench", Company: "c", Project: "p", Status: status,
						Created: &now, LastUpdate: &now})
				})
				if err != nil {
					b.Fatal(err)
				}
				ids <- id
			}
			close(ids)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for id := range ids {
						if err := op(st, id); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
