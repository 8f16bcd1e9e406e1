package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
)

// eachSQLStore runs fn as a subtest on a store over a fresh SQLite file
// and one over a fresh PostgreSQL database.
func eachSQLStore(t *testing.T, fn func(t *testing.T, ctx context.Context, s *sqlStore)) {
	for name, dsn := range map[string]string{"sqlite": filepath.Join(t.TempDir(), "s.db"), "postgres": pgtest.NewDatabase(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fn(t, ctx, st.(*sqlStore))
		})
	}
}

// TestPutTaskKeepsIndexedColumns: however a transaction reads and writes a
// task, the row's indexed columns (company, status, project) end up those
// of the document, so that listings by status or project find it. SQLite
// writes a task it has read with only the columns that change, guarded by
// the values it read: a row changed behind that read takes the full write.
func TestPutTaskKeepsIndexedColumns(t *testing.T) {
	t.Parallel()
	status := func(s string) func(*api.Task) { return func(t *api.Task) { t.Status = s } }
	rename := func(t *api.Task) { t.Name = "renamed" }
	// Each case starts from task "t" (created, project p1), stored, and
	// changes it in one transaction: the task is read (unless unread),
	// raw runs, the task is deleted (if asked), then each change is
	// written in turn.
	tests := []struct {
		name    string
		unread  bool
		raw     string
		delete  bool
		changes []func(*api.Task)
		want    taskKeys
	}{
		{name: "status kept", changes: []func(*api.Task){rename},
			want: taskKeys{"c", api.StatusCreated, "p1"}},
		{name: "status changed", changes: []func(*api.Task){status(api.StatusQueued)},
			want: taskKeys{"c", api.StatusQueued, "p1"}},
		{name: "project changed", changes: []func(*api.Task){func(t *api.Task) { t.Project = "p2" }},
			want: taskKeys{"c", api.StatusCreated, "p2"}},
		{name: "written three times", changes: []func(*api.Task){status(api.StatusQueued), status(api.StatusInProgress), rename},
			want: taskKeys{"c", api.StatusInProgress, "p1"}},
		{name: "row changed after the read", raw: `UPDATE tasks SET status = 'stopped' WHERE id = 't'`,
			changes: []func(*api.Task){status(api.StatusQueued)}, want: taskKeys{"c", api.StatusQueued, "p1"}},
		{name: "row changed after the read, status kept", raw: `UPDATE tasks SET status = 'stopped', project = 'p9' WHERE id = 't'`,
			changes: []func(*api.Task){rename}, want: taskKeys{"c", api.StatusCreated, "p1"}},
		{name: "deleted and written again", delete: true, changes: []func(*api.Task){status(api.StatusQueued)},
			want: taskKeys{"c", api.StatusQueued, "p1"}},
		{name: "never read", unread: true, changes: []func(*api.Task){func(t *api.Task) { t.Status, t.Project = api.StatusStopped, "p3" }},
			want: taskKeys{"c", api.StatusStopped, "p3"}},
	}
	eachSQLStore(t, func(t *testing.T, ctx context.Context, s *sqlStore) {
		for _, tt := range tests {
			now := api.Now()
			stored := api.Task{ID: "t", Name: "n", Company: "c", Status: api.StatusCreated, Project: "p1", Created: &now, LastUpdate: &now}
			err := s.Update(ctx, func(tx Tx) error {
				if err := tx.DeleteTask("t"); err != nil {
					return err
				}
				task := stored
				return tx.PutTask(&task)
			})
			if err != nil {
				t.Fatalf("%s: storing the task: %v", tt.name, err)
			}
			err = s.Update(ctx, func(x Tx) error {
				tx := x.(*sqlTx)
				task := &api.Task{}
				*task = stored
				if !tt.unread {
					if task, err = tx.Task("t"); err != nil {
						return err
					}
				}
				if tt.raw != "" {
					if _, err := tx.exec(tt.raw); err != nil {
						return err
					}
				}
				if tt.delete {
					if err := tx.DeleteTask("t"); err != nil {
						return err
					}
				}
				for _, change := range tt.changes {
					change(task)
					if err := tx.PutTask(task); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var got taskKeys
			q := (&sqlTx{s: s}).rebind(`SELECT company, status, project FROM tasks WHERE id = ?`)
			if err := s.write.QueryRowContext(ctx, q, "t").Scan(&got.company, &got.status, &got.project); err != nil {
				t.Fatalf("%s: reading the row: %v", tt.name, err)
			}
			if got != tt.want {
				t.Errorf("%s: row columns %+v, want %+v", tt.name, got, tt.want)
			}
			err = s.View(ctx, func(tx Tx) error {
				found, err := tx.Tasks(TaskQuery{Company: "c", Statuses: []string{tt.want.status}, Projects: []string{tt.want.project}})
				if err == nil && (len(found) != 1 || keysOf(found[0]) != tt.want) {
					t.Errorf("%s: listing by status %s and project %s found %d tasks", tt.name, tt.want.status, tt.want.project, len(found))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}
