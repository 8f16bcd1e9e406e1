package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestTasksByStatus: the tasks of some statuses (what the watchdog and the
// generic listing ask), updated before a time or not, follow every kind of
// status write: a task written without being read, one read then written
// with a new status, and one read then written with its status kept;
// other companies' stay out, a task never updated is updated before any
// time.
func TestTasksByStatus(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		defer st.Close()
		now := api.Now()
		putTasks(t, st, &api.Task{ID: "a", Company: "c", Status: api.StatusCreated, LastUpdate: &now},
			&api.Task{ID: "b", Company: "c", Status: api.StatusInProgress, LastUpdate: &now},
			&api.Task{ID: "c", Company: "c", Status: api.StatusInProgress, LastUpdate: &now},
			&api.Task{ID: "n", Company: "c", Status: api.StatusInProgress}, // never updated
			&api.Task{ID: "x", Company: "other", Status: api.StatusInProgress, LastUpdate: &now})
		// Read, then written: a gets a new status, b keeps its own.
		later := api.NewTime(now.Add(time.Second))
		err := st.Update(ctx, func(tx store.Tx) error {
			for id, status := range map[string]string{"a": api.StatusInProgress, "b": api.StatusInProgress} {
				task, err := tx.Task(id)
				if err != nil {
					return err
				}
				task.Status, task.LastUpdate = status, later
				if err := tx.PutTask(task); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Written without a read: c stops.
		putTasks(t, st, &api.Task{ID: "c", Company: "c", Status: api.StatusStopped, LastUpdate: later})
		justAfter := later.Add(time.Millisecond)
		for _, tc := range []struct {
			statuses []string
			before   *time.Time
			want     string
		}{
			{[]string{api.StatusInProgress}, nil, "a b n"},
			{[]string{api.StatusStopped, api.StatusCreated}, nil, "c"},
			{[]string{api.StatusCreated}, nil, ""},
			{[]string{api.StatusInProgress, api.StatusStopped}, nil, "a b c n"},
			// The watchdog's question: updated before a time.
			{[]string{api.StatusInProgress}, &later.Time, "n"},
			{[]string{api.StatusInProgress}, &justAfter, "a b n"},
		} {
			var got []string
			err := st.View(ctx, func(tx store.Tx) error {
				tasks, err := tx.Tasks(store.TaskQuery{Company: "c", Statuses: tc.statuses, UpdatedBefore: tc.before})
				for _, task := range tasks {
					got = append(got, task.ID)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("tasks %v updated before %v: %v, want %s", tc.statuses, tc.before, got, tc.want)
			}
		}
	})
}
