package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// TestBackfillTaskList: migration 4 fills the listing table from the tasks
// a database already holds (here: more than one page of them).
func TestBackfillTaskList(t *testing.T) {
	t.Parallel()
	eachSQLStore(t, func(t *testing.T, ctx context.Context, s *sqlStore) {
		now := api.Now()
		err := s.Update(ctx, func(tx Tx) error {
			for i := range 2500 {
				task := &api.Task{ID: fmt.Sprintf("t%05d", i), Name: "n", Company: "c", Status: api.StatusCreated, Created: &now, LastUpdate: &now}
				if err := tx.PutTask(task); err != nil {
					return err
				}
			}
			// As before migration 4: tasks without listing rows.
			_, err := tx.(*sqlTx).exec(`DELETE FROM task_list`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.runTx(ctx, s.write, true, func(tx Tx) error { return backfillTaskList(tx.(*sqlTx)) }); err != nil {
			t.Fatalf("backfill: %v", err)
		}
		var n int
		if err := s.write.QueryRow(`SELECT COUNT(*) FROM task_list WHERE company = 'c' AND created_us IS NOT NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2500 {
			t.Fatalf("%d listing rows after the backfill, want 2500", n)
		}
	})
}
