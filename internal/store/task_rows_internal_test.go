package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
)

// TestPutTaskKeepsIndexedColumns: however a transaction reads and writes a
// task, the row's indexed columns (company, status, project) end up those
// of the document, so that listings by status or project find it. SQLite
// writes a task it has read with only the columns that change, guarded by
// the values it read: a row changed behind that read takes the full write.
func TestPutTaskKeepsIndexedColumns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// write changes the stored task "t" (created, project p1) in
		// one transaction.
		write func(tx *sqlTx) error
		want  taskKeys
	}{
		{"read, status kept", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			task.Name = "renamed"
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusCreated, "p1"}},
		{"read, status changed", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			task.Status = api.StatusQueued
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusQueued, "p1"}},
		{"read, project changed", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			task.Project = "p2"
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusCreated, "p2"}},
		{"read, written twice", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			task.Status = api.StatusQueued
			if err := tx.PutTask(task); err != nil {
				return err
			}
			task.Status = api.StatusInProgress
			if err := tx.PutTask(task); err != nil {
				return err
			}
			task.Name = "again"
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusInProgress, "p1"}},
		{"row changed after the read", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			if _, err := tx.exec(`UPDATE tasks SET status = 'stopped' WHERE id = 't'`); err != nil {
				return err
			}
			task.Status = api.StatusQueued
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusQueued, "p1"}},
		{"row changed after the read, status kept", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			if _, err := tx.exec(`UPDATE tasks SET status = 'stopped', project = 'p9' WHERE id = 't'`); err != nil {
				return err
			}
			task.Name = "renamed"
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusCreated, "p1"}},
		{"deleted and written again", func(tx *sqlTx) error {
			task, err := tx.Task("t")
			if err != nil {
				return err
			}
			if err := tx.DeleteTask("t"); err != nil {
				return err
			}
			task.Status = api.StatusQueued
			return tx.PutTask(task)
		}, taskKeys{"c", api.StatusQueued, "p1"}},
		{"never read", func(tx *sqlTx) error {
			now := api.Now()
			return tx.PutTask(&api.Task{ID: "t", Company: "c", Status: api.StatusStopped, Project: "p3", LastUpdate: &now})
		}, taskKeys{"c", api.StatusStopped, "p3"}},
	}
	for name, dsn := range map[string]string{"sqlite": filepath.Join(t.TempDir(), "s.db"), "postgres": pgtest.NewDatabase(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, tt := range tests {
				err := st.Update(ctx, func(tx Tx) error {
					if err := tx.DeleteTask("t"); err != nil {
						return err
					}
					now := api.Now()
					return tx.PutTask(&api.Task{ID: "t", Name: "n", Company: "c", Status: api.StatusCreated, Project: "p1",
						Created: &now, LastUpdate: &now})
				})
				if err != nil {
					t.Fatalf("%s: storing the task: %v", tt.name, err)
				}
				if err := st.Update(ctx, func(tx Tx) error { return tt.write(tx.(*sqlTx)) }); err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				var got taskKeys
				var doc string
				s := st.(*sqlStore)
				q := (&sqlTx{s: s}).rebind(`SELECT company, status, project, doc FROM tasks WHERE id = ?`)
				if err := s.write.QueryRowContext(ctx, q, "t").Scan(&got.company, &got.status, &got.project, &doc); err != nil {
					t.Fatalf("%s: reading the row: %v", tt.name, err)
				}
				if got != tt.want {
					t.Errorf("%s: row columns %+v, want %+v", tt.name, got, tt.want)
				}
				err = st.View(ctx, func(tx Tx) error {
					found, err := tx.Tasks(TaskQuery{Company: "c", Statuses: []string{tt.want.status}, Projects: []string{tt.want.project}})
					if err != nil {
						return err
					}
					if len(found) != 1 || keysOf(found[0]) != tt.want {
						t.Errorf("%s: listing by status %s and project %s found %d tasks (document %s)",
							tt.name, tt.want.status, tt.want.project, len(found), doc)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
