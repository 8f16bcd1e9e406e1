package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

func pageIDs(t *testing.T, st store.Store, q store.TaskPageQuery) []string {
	t.Helper()
	var ids []string
	err := st.View(context.Background(), func(tx store.Tx) error {
		tasks, err := tx.TaskPage(q)
		for _, task := range tasks {
			ids = append(ids, task.ID)
		}
		return err
	})
	if err != nil {
		t.Fatalf("TaskPage: %v", err)
	}
	return ids
}

// TestTaskPage: the listing filters, sorts (ties by id, missing values
// first), pages, and follows task updates and deletions.
func TestTaskPage(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		defer st.Close()
		base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		at := func(s int) *api.Time { return api.NewTime(base.Add(time.Duration(s) * time.Second)) }
		tasks := []*api.Task{
			{ID: "a", Name: "Zeta run", User: "u1", Type: "training", Status: api.StatusCompleted, Project: "p1",
				Created: at(3), Started: at(4), LastUpdate: at(9), Tags: []string{"x", `q"uote`}, SystemTags: []string{}},
			{ID: "b", Name: "alpha", User: "u2", Type: "testing", Status: api.StatusQueued, Project: "p2",
				Created: at(1), LastUpdate: at(5), Tags: []string{"y"}, SystemTags: []string{"archived"}, Comment: "Needle here"},
			{ID: "c", Name: "beta", User: "u1", Status: api.StatusInProgress, Project: "p1",
				Created: at(2), Started: at(6), LastUpdate: at(7), Tags: []string{"x", "y"}, SystemTags: []string{"hidden"}},
			{ID: "d", Name: "beta", User: "u3", Type: "training", Status: api.StatusCreated, Project: "p1",
				LastUpdate: at(2), Tags: nil, SystemTags: []string{}},
			{ID: "e", Name: "other company", Company: "c2", Status: api.StatusCreated, Created: at(0)},
		}
		err := st.Update(ctx, func(tx store.Tx) error {
			for _, task := range tasks {
				if task.Company == "" {
					task.Company = "c"
				}
				if err := tx.PutTask(task); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			q    store.TaskPageQuery
			want []string
		}{
			{"default order is the id", store.TaskPageQuery{}, []string{"a", "b", "c", "d"}},
			{"created, missing first", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "created"}}}, []string{"d", "b", "c", "a"}},
			{"created desc, missing last", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "created", Desc: true}}}, []string{"a", "c", "b", "d"}},
			{"name, ties by id", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "name"}}}, []string{"a", "b", "c", "d"}},
			{"name desc, ties by id descending", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "name", Desc: true}}}, []string{"d", "c", "b", "a"}},
			{"status", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "status"}}}, []string{"a", "d", "c", "b"}},
			{"status desc", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "status", Desc: true}}}, []string{"b", "c", "d", "a"}},
			{"type, ties by id", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "type"}}}, []string{"c", "b", "a", "d"}},
			{"type desc, ties by id descending", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "type", Desc: true}}}, []string{"d", "a", "b", "c"}},
			{"type desc then created", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "type", Desc: true}, {Field: "created"}}}, []string{"d", "a", "b", "c"}},
			{"type then started", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "type"}, {Field: "started", Desc: true}}}, []string{"c", "b", "a", "d"}},
			{"status include", store.TaskPageQuery{Status: store.TermFilter{Include: []string{api.StatusQueued, api.StatusCreated}}}, []string{"b", "d"}},
			{"user exclude", store.TaskPageQuery{User: store.TermFilter{Exclude: []string{"u1"}}}, []string{"b", "d"}},
			{"type include", store.TaskPageQuery{Type: store.TermFilter{Include: []string{"training"}}}, []string{"a", "d"}},
			{"project and tag", store.TaskPageQuery{Project: store.TermFilter{Include: []string{"p1"}}, Tags: store.TermFilter{Include: []string{"y"}}}, []string{"c"}},
			{"tag with a quote", store.TaskPageQuery{Tags: store.TermFilter{Include: []string{`q"uote`}}}, []string{"a"}},
			{"tag part is no match", store.TaskPageQuery{Tags: store.TermFilter{Include: []string{"uote", `q"`}}}, nil},
			{"tag exclude", store.TaskPageQuery{Tags: store.TermFilter{Exclude: []string{"x"}}}, []string{"b", "d"}},
			{"not archived", store.TaskPageQuery{SystemTags: store.TermFilter{Exclude: []string{"archived"}}}, []string{"a", "c", "d"}},
			{"hidden", store.TaskPageQuery{HideHidden: true}, []string{"a", "b", "d"}},
			{"search in comment", store.TaskPageQuery{Search: "needle"}, []string{"b"}},
			{"search in name", store.TaskPageQuery{Search: "eta"}, []string{"a", "c", "d"}},
			{"started after", store.TaskPageQuery{Started: []store.TimeBound{{Op: ">", T: base.Add(4 * time.Second)}}}, []string{"c"}},
			{"started from, sub-microsecond bound", store.TaskPageQuery{Started: []store.TimeBound{{Op: ">=", T: base.Add(4*time.Second - time.Nanosecond)}}}, []string{"a", "c"}},
			{"started before", store.TaskPageQuery{Started: []store.TimeBound{{Op: "<=", T: base.Add(4 * time.Second)}}}, []string{"a"}},
			{"page 2 of size 3", store.TaskPageQuery{Offset: 3, Limit: 3}, []string{"d"}},
		}
		for _, tc := range tests {
			tc.q.Company = "c"
			if tc.q.Limit == 0 {
				tc.q.Limit = 100
			}
			if got := pageIDs(t, st, tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}
		// Updates and deletions reach the listing.
		// (a status: the listing row changes in place; system tags and the
		// created time: the indexed columns change too.)
		err = st.Update(ctx, func(tx store.Tx) error {
			tasks[0].Status = api.StatusQueued
			if err := tx.PutTask(tasks[0]); err != nil {
				return err
			}
			tasks[3].SystemTags, tasks[3].Created = []string{"archived"}, at(9)
			if err := tx.PutTask(tasks[3]); err != nil {
				return err
			}
			// A new start time, and a new name that leaves the search text
			// as it was.
			tasks[0].Started = at(10)
			if err := tx.PutTask(tasks[0]); err != nil {
				return err
			}
			tasks[2].Name = "Beta"
			if err := tx.PutTask(tasks[2]); err != nil {
				return err
			}
			// A new type (the listing row rewritten), and a write that
			// changes only the last update (in place, the status kept).
			tasks[2].Type, tasks[2].LastUpdate = "inference", at(20)
			if err := tx.PutTask(tasks[2]); err != nil {
				return err
			}
			tasks[0].LastUpdate = at(30)
			if err := tx.PutTask(tasks[0]); err != nil {
				return err
			}
			return tx.DeleteTask("b")
		})
		if err != nil {
			t.Fatal(err)
		}
		q := store.TaskPageQuery{Company: "c", Limit: 10, Status: store.TermFilter{Include: []string{api.StatusQueued}}}
		if got := pageIDs(t, st, q); !slices.Equal(got, []string{"a"}) {
			t.Errorf("after the update and the deletion: %v, want [a]", got)
		}
		q = store.TaskPageQuery{Company: "c", Limit: 10, Order: []store.TaskOrder{{Field: "created", Desc: true}}}
		if got := pageIDs(t, st, q); !slices.Equal(got, []string{"d", "a", "c"}) {
			t.Errorf("after d's new created time: %v, want [d a c]", got)
		}
		q.SystemTags = store.TermFilter{Exclude: []string{"archived"}}
		if got := pageIDs(t, st, q); !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("after archiving d: %v, want [a c]", got)
		}
		q = store.TaskPageQuery{Company: "c", Limit: 10, Order: []store.TaskOrder{{Field: "name"}}}
		if got := pageIDs(t, st, q); !slices.Equal(got, []string{"c", "a", "d"}) {
			t.Errorf("by name after c's rename to Beta: %v, want [c a d]", got)
		}
		q.Order = []store.TaskOrder{{Field: "started", Desc: true}}
		if got := pageIDs(t, st, q); !slices.Equal(got, []string{"a", "c", "d"}) {
			t.Errorf("by start after a's new start: %v, want [a c d]", got)
		}
		for _, tc := range []struct {
			order store.TaskOrder
			want  []string
		}{
			{store.TaskOrder{Field: "status"}, []string{"d", "c", "a"}},
			{store.TaskOrder{Field: "type"}, []string{"c", "a", "d"}},
			{store.TaskOrder{Field: "last_update", Desc: true}, []string{"a", "c", "d"}},
		} {
			q.Order = []store.TaskOrder{tc.order}
			if got := pageIDs(t, st, q); !slices.Equal(got, tc.want) {
				t.Errorf("by %v after the writes: %v, want %v", tc.order, got, tc.want)
			}
		}
	})
}

// TestMoveEntry: a queue's entries move up, down, to the head and to the
// tail; the next pops follow the new order; entries added later stay
// behind; an unknown task is ErrNotFound.
func TestMoveEntry(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		defer st.Close()
		entries := func(q string) []string {
			var out []string
			st.View(ctx, func(tx store.Tx) error {
				es, err := tx.Entries(q, 0)
				for _, e := range es {
					out = append(out, e.Task)
				}
				return err
			})
			return out
		}
		move := func(q, task string, to int) (int, error) {
			var got int
			err := st.Update(ctx, func(tx store.Tx) error {
				var err error
				got, err = tx.MoveEntry(q, task, to)
				return err
			})
			return got, err
		}
		err := st.Update(ctx, func(tx store.Tx) error {
			for _, q := range []string{"q1", "q2"} {
				for i := range 5 {
					if _, err := tx.AddEntry(q, fmt.Sprintf("%s-t%d", q, i), api.Now()); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			task string
			to   int
			pos  int
			want string
		}{
			{"q1-t3", 0, 0, "t3 t0 t1 t2 t4"},
			{"q1-t0", 3, 3, "t3 t1 t2 t0 t4"},
			{"q1-t4", -5, 0, "t4 t3 t1 t2 t0"},
			{"q1-t4", 99, 4, "t3 t1 t2 t0 t4"},
			{"q1-t1", 1, 1, "t3 t1 t2 t0 t4"},
		}
		for _, s := range steps {
			pos, err := move("q1", s.task, s.to)
			got := fmt.Sprint(entries("q1"))
			want := fmt.Sprint(prefixed("q1-", s.want))
			if err != nil || pos != s.pos || got != want {
				t.Fatalf("move %s to %d: position %d, %v, order %s; want %d, %s", s.task, s.to, pos, err, got, s.pos, want)
			}
		}
		if got, want := fmt.Sprint(entries("q2")), fmt.Sprint(prefixed("q2-", "t0 t1 t2 t3 t4")); got != want {
			t.Fatalf("the other queue changed: %s, want %s", got, want)
		}
		if _, err := move("q1", "q2-t0", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("moving a task of another queue: %v, want ErrNotFound", err)
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			_, err := tx.AddEntry("q1", "q1-late", api.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var popped []string
		for range 6 {
			st.Update(ctx, func(tx store.Tx) error {
				e, err := tx.PopEntry("q1")
				if e != nil {
					popped = append(popped, e.Task)
				}
				return err
			})
		}
		if got, want := fmt.Sprint(popped), fmt.Sprint(prefixed("q1-", "t3 t1 t2 t0 t4 late")); got != want {
			t.Fatalf("pops %s, want %s", got, want)
		}
	})
}

func prefixed(prefix, words string) []string {
	var out []string
	for _, w := range strings.Fields(words) {
		out = append(out, prefix+w)
	}
	return out
}
