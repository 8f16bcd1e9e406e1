package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// TestLongIDLists: listings by id, status and project take lists far over
// SQLite's 32,766 variables and PostgreSQL's 65,535 parameters, and an
// empty list matches nothing.
func TestLongIDLists(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		var err error
		defer st.Close()
		now := api.Now()
		err = st.Update(ctx, func(tx store.Tx) error {
			for i := range 3 {
				id := fmt.Sprintf("task%d", i)
				if err := tx.PutTask(&api.Task{ID: id, Company: "c", Status: api.StatusCreated, Project: "p", LastUpdate: &now}); err != nil {
					return err
				}
				if err := tx.PutModel(&api.Model{ID: "model" + id, Company: "c", Task: id, Project: "p"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"task0", "task2"}
		for i := range 70_000 {
			ids = append(ids, fmt.Sprintf("missing%d", i))
		}
		err = st.View(ctx, func(tx store.Tx) error {
			tasks, err := tx.Tasks(store.TaskQuery{Company: "c", IDs: ids, Statuses: append([]string{api.StatusCreated}, ids...), Projects: append(ids, "p")})
			if err != nil {
				return err
			}
			if len(tasks) != 2 || tasks[0].ID != "task0" || tasks[1].ID != "task2" {
				return fmt.Errorf("tasks by %d ids: %d found", len(ids), len(tasks))
			}
			models, err := tx.Models(store.ModelQuery{Company: "c", Tasks: ids})
			if err != nil {
				return err
			}
			if len(models) != 2 {
				return fmt.Errorf("models by %d task ids: %d found", len(ids), len(models))
			}
			if tasks, err := tx.Tasks(store.TaskQuery{Company: "c", IDs: []string{}}); err != nil || len(tasks) != 0 {
				return fmt.Errorf("empty id list: %d tasks, %v", len(tasks), err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
