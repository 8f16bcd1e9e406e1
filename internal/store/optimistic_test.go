package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/store"
)

// unlocked is the store's enqueue without a transaction held open.
type unlocked interface {
	TaskVersion(ctx context.Context, id string) (*api.Task, string, error)
	EnqueueTask(ctx context.Context, task *api.Task, version, queueID, company string, added api.Time) (store.EnqueueOutcome, error)
}

// TestEnqueueTaskWritesOnlyAnUnchangedTask: on PostgreSQL the enqueue's
// one statement writes the task, its entry and its leaving other queues
// only when the task is the version read, the queue the company's, the
// task not in it yet and its listing row writable in place; otherwise it
// writes nothing and says why. SQLite has no such write.
func TestEnqueueTaskWritesOnlyAnUnchangedTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlite := open(t, filepath.Join(t.TempDir(), "store.db"))
	defer sqlite.Close()
	if _, _, err := sqlite.(unlocked).TaskVersion(ctx, "any"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SQLite TaskVersion: %v, want errors.ErrUnsupported", err)
	}

	st := open(t, pgtest.NewDatabase(t))
	defer st.Close()
	u := st.(unlocked)
	now := api.Now()
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, q := range []*api.Queue{{ID: "q1", Name: "q1", Company: "c"}, {ID: "q2", Name: "q2", Company: "c"}, {ID: "qx", Name: "qx", Company: "other"}} {
			if _, err := tx.InsertQueue(q); err != nil {
				return err
			}
		}
		for _, id := range []string{"t-stale", "t-badq", "t-there", "t-tags", "t-name", "t-started", "t-type", "t-ok"} {
			if err := tx.PutTask(&api.Task{ID: id, Name: id, Company: "c", Status: api.StatusCreated, Created: &now, LastUpdate: &now}); err != nil {
				return err
			}
		}
		if _, err := tx.AddEntry("q1", "t-there", now); err != nil {
			return err
		}
		_, err := tx.AddEntry("q2", "t-ok", now) // left behind by the enqueue to q1
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		task, queue string
		between     func(tx store.Tx) error // a write after the read
		change      func(t *api.Task)       // what the enqueue changes besides the status
		want        store.EnqueueOutcome
	}{
		{task: "t-stale", queue: "q1", want: store.EnqueueStale, between: func(tx store.Tx) error {
			t, err := tx.Task("t-stale")
			if err != nil {
				return err
			}
			t.StatusMessage = "written in between" // not a column of the listing row
			return tx.PutTask(t)
		}},
		{task: "t-badq", queue: "qx", want: store.EnqueueBadQueue},
		{task: "t-badq", queue: "missing", want: store.EnqueueBadQueue},
		{task: "t-there", queue: "q1", want: store.EnqueueAlreadyThere},
		{task: "t-tags", queue: "q1", want: store.EnqueueNeedsTransaction, change: func(t *api.Task) { t.Tags = []string{"new"} }},
		// A new name the search text does not see: the name index's entry moves.
		{task: "t-name", queue: "q1", want: store.EnqueueNeedsTransaction, change: func(t *api.Task) { t.Name = "T-NAME" }},
		{task: "t-started", queue: "q1", want: store.EnqueueNeedsTransaction, change: func(t *api.Task) { t.Started = t.LastUpdate }},
		{task: "t-type", queue: "q1", want: store.EnqueueNeedsTransaction, change: func(t *api.Task) { t.Type = "inference" }},
		{task: "t-ok", queue: "q1", want: store.Enqueued},
	} {
		t.Run(tc.task+"/"+tc.queue, func(t *testing.T) {
			task, version, err := u.TaskVersion(ctx, tc.task)
			if err != nil {
				t.Fatal(err)
			}
			if tc.between != nil {
				if err := st.Update(ctx, tc.between); err != nil {
					t.Fatal(err)
				}
			}
			later := api.Now()
			task.Status, task.LastUpdate = api.StatusQueued, &later
			if tc.change != nil {
				tc.change(task)
			}
			got, err := u.EnqueueTask(ctx, task, version, tc.queue, "c", later)
			if err != nil || got != tc.want {
				t.Fatalf("EnqueueTask = %v, %v; want %v", got, err, tc.want)
			}
			err = st.View(ctx, func(tx store.Tx) error {
				stored, err := tx.Task(tc.task)
				if err != nil {
					return err
				}
				entries, err := tx.TaskQueues(tc.task)
				if err != nil {
					return err
				}
				written := tc.want == store.Enqueued
				if (stored.Status == api.StatusQueued) != written {
					t.Errorf("stored status %s, written %v", stored.Status, written)
				}
				if written && (len(entries) != 1 || entries[0] != tc.queue) {
					t.Errorf("entries %v, want only %s", entries, tc.queue)
				}
				if !written && tc.task != "t-there" && len(entries) != 0 {
					t.Errorf("entries %v after an enqueue that wrote nothing", entries)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	// The listing rows follow the tasks: only the enqueued one is queued.
	var queued []*api.Task
	err = st.View(ctx, func(tx store.Tx) error {
		var err error
		queued, err = tx.TaskPage(store.TaskPageQuery{Company: "c", Status: store.TermFilter{Include: []string{api.StatusQueued}}, Limit: 10})
		return err
	})
	if err != nil || len(queued) != 1 || queued[0].ID != "t-ok" {
		t.Fatalf("queued in the listing: %v, %v; want t-ok alone", queued, err)
	}
}
