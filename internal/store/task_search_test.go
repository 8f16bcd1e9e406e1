package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// TestTaskSearchFollowsWrites: the text search finds what the tasks say
// now, through renames, comment edits, deletions and bulk writes, whether
// its matches are few (looked up in the search index) or many (the
// listing walked in order), and for searches too short for the index or
// with LIKE's wildcards in them, and for searches of several words, one
// of them rare (PostgreSQL gives the index the rarest).
func TestTaskSearchFollowsWrites(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st := open(t, dsn)
		defer st.Close()
		// Searches with more candidates than this walk the listing.
		store.SetMaxSparseSearch(st, 1000)
		base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		names := map[string]string{} // id -> the searched text the test expects
		put := func(tasks ...*api.Task) {
			t.Helper()
			putTasks(t, st, tasks...)
			for _, task := range tasks {
				names[task.ID] = strings.ToLower(task.ID + " " + task.Name + " " + task.Comment)
			}
		}
		task := func(i int, name string) *api.Task {
			return &api.Task{ID: fmt.Sprintf("t%05d", i), Company: "c", Name: name, Status: api.StatusCreated,
				Created: api.NewTime(base.Add(time.Duration(i) * time.Second)), LastUpdate: api.NewTime(base)}
		}
		var many []*api.Task
		for i := range 1200 { // more matches than the index is asked for
			many = append(many, task(i, fmt.Sprintf("Common run %d", i)))
		}
		put(many...)
		put(task(2000, "rare Needle"), task(2001, "the 50%_off run"), task(2002, "needle again"))
		check := func(search string) {
			t.Helper()
			var want []string
			for id, text := range names {
				if strings.Contains(text, search) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			slices.Reverse(want) // newest first: ids grow with the created time
			want = want[:min(len(want), 10)]
			got := pageIDs(t, st, store.TaskPageQuery{Company: "c", Search: search, Limit: 10,
				Order: []store.TaskOrder{{Field: "created", Desc: true}}})
			if !slices.Equal(got, want) {
				t.Fatalf("search %q: %v, want %v", search, got, want)
			}
		}
		for _, s := range []string{"needle", "common run", "run 11", "ne", "50%_o", "%_", "absent", "t0200",
			"rare needle", "common run 119", "119 common"} {
			check(s)
		}
		// A rename, a comment, a deletion.
		renamed := task(2000, "haystack")
		renamed.Comment = "Found it"
		put(renamed)
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.DeleteTask("t02002") }); err != nil {
			t.Fatal(err)
		}
		delete(names, "t02002")
		for _, s := range []string{"needle", "haystack", "found it", "rare"} {
			check(s)
		}
		// Tasks written in bulk are found too.
		if err := store.GenerateTasks(ctx, st, store.SyntheticTasks{Company: "c", User: "u", N: 20, Start: base.Add(time.Hour), Prefix: "b"}); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			id := fmt.Sprintf("b%031x", i)
			names[id] = fmt.Sprintf("%s experiment %d ", id, i)
		}
		check("experiment 1")
	})
}
