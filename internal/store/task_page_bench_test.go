package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/store"
)

// taskPageQueries are the listings BenchmarkTaskPage measures: what the
// web UI, the SDK and the daemons ask most, one page of 10 each.
func taskPageQueries(owner string, n int, start time.Time) []struct {
	name string
	q    store.TaskPageQuery
} {
	newest := []store.TaskOrder{{Field: "created", Desc: true}}
	updated := []store.TaskOrder{{Field: "last_update", Desc: true}}
	in := func(v ...string) store.TermFilter { return store.TermFilter{Include: v} }
	return []struct {
		name string
		q    store.TaskPageQuery
	}{
		{"newest", store.TaskPageQuery{HideHidden: true, Order: newest}},
		{"last-update", store.TaskPageQuery{HideHidden: true, Order: updated}},
		{"status-queued", store.TaskPageQuery{HideHidden: true, Status: in(api.StatusQueued), Order: newest}},
		{"project-by-update", store.TaskPageQuery{HideHidden: true, Project: in("P7"), Order: updated}},
		// A status one task in a hundred has, in a project of one in 47:
		// 21 tasks in a million.
		{"project-running-by-update", store.TaskPageQuery{HideHidden: true, Project: in("P7"), Status: in(api.StatusInProgress), Order: updated}},
		{"user", store.TaskPageQuery{HideHidden: true, User: in(owner), Order: newest}},
		{"tag", store.TaskPageQuery{HideHidden: true, Tags: store.TermFilter{Include: []string{"best"}}, Order: newest}},
		// A tag no task has: the worst case, every index entry tested.
		{"tag-absent", store.TaskPageQuery{HideHidden: true, Tags: store.TermFilter{Include: []string{"paper"}}, Order: newest}},
		{"page-1000", store.TaskPageQuery{HideHidden: true, Order: newest, Offset: 10_000}},
		// Half way down: by offset, and by a scroll's cursor (the task
		// after which the page starts: task n/2, newest first).
		{"offset-half", store.TaskPageQuery{Order: newest, Offset: n / 2}},
		{"cursor-half", store.TaskPageQuery{Order: newest, After: &store.TaskCursor{
			Value: start.Add(time.Duration(n/2) * time.Second).UnixMicro(), ID: fmt.Sprintf("%032x", n/2)}}},
		{"search", store.TaskPageQuery{HideHidden: true, Search: "experiment 4242", Order: newest}},
		// 1,111 and 11,111 matches in a million tasks.
		{"search-424", store.TaskPageQuery{HideHidden: true, Search: "experiment 424", Order: newest}},
		{"search-42", store.TaskPageQuery{HideHidden: true, Search: "experiment 42", Order: newest}},
		{"name", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "name"}}}},
		{"name-desc", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "name", Desc: true}}}},
		{"started", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "started", Desc: true}}}},
		// A click on the web UI's status and type columns, both ways.
		{"status", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "status"}}}},
		{"status-desc", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "status", Desc: true}}}},
		{"type", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "type"}}}},
		{"type-desc", store.TaskPageQuery{HideHidden: true, Order: []store.TaskOrder{{Field: "type", Desc: true}}}},
		// The web UI's throughput: the tasks started in the last hour
		// (3,600 of them), latest first.
		{"started-last-hour", store.TaskPageQuery{Order: []store.TaskOrder{{Field: "started", Desc: true}},
			Started: []store.TimeBound{{Op: ">=", T: start.Add(time.Duration(n-3600) * time.Second)}}}},
	}
}

// BenchmarkTaskPage lists pages of 10 over TASK_PAGE_BENCH_N synthetic
// tasks (default 100,000; store.GenerateTasks writes them), on both back
// ends.
func BenchmarkTaskPage(b *testing.B) {
	n := benchTaskCount(b)
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			st, spec := generatedStore(b, backend, n)
			for _, c := range taskPageQueries("owner", n, spec.Start) {
				b.Run(c.name, func(b *testing.B) {
					q := c.q
					q.Company, q.Limit = "c", 10
					for b.Loop() {
						err := st.View(ctx, func(tx store.Tx) error {
							tasks, err := tx.TaskPage(q)
							want := 10
							if strings.HasSuffix(c.name, "-absent") {
								want = 0
							}
							if err == nil && len(tasks) != want {
								err = fmt.Errorf("%d tasks in the page", len(tasks))
							}
							return err
						})
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkTaskQuery reads what the generic listing path and the watchdog
// ask the tasks table itself (Tasks), over TASK_PAGE_BENCH_N synthetic
// tasks: every task of a status or a project, which the server then
// filters and sorts whole.
func BenchmarkTaskQuery(b *testing.B) {
	n := benchTaskCount(b)
	now := time.Now()
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			st, spec := generatedStore(b, backend, n)
			for _, c := range []struct {
				name string
				q    store.TaskQuery
				none bool // no task matches
			}{
				// One task in a hundred each (see SyntheticTasks).
				{name: "running-updated-before", q: store.TaskQuery{Statuses: []string{api.StatusInProgress}, UpdatedBefore: &now}},
				// The watchdog's usual answer: none of them is stale.
				{name: "running-none-stale", q: store.TaskQuery{Statuses: []string{api.StatusInProgress}, UpdatedBefore: &spec.Start}, none: true},
				{name: "queued", q: store.TaskQuery{Statuses: []string{api.StatusQueued}}},
				{name: "queued-or-running", q: store.TaskQuery{Statuses: []string{api.StatusQueued, api.StatusInProgress}}},
				{name: "project", q: store.TaskQuery{Projects: []string{"P7"}}},
			} {
				b.Run(c.name, func(b *testing.B) {
					q := c.q
					q.Company = "c"
					for b.Loop() {
						err := st.View(ctx, func(tx store.Tx) error {
							tasks, err := tx.Tasks(q)
							found := len(tasks) >= n/200
							if c.none {
								found = len(tasks) == 0
							}
							if err == nil && !found {
								err = fmt.Errorf("%d tasks", len(tasks))
							}
							return err
						})
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// benchTaskCount is TASK_PAGE_BENCH_N, by default 100,000.
func benchTaskCount(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("TASK_PAGE_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TASK_PAGE_BENCH_N=%q: %v", v, err)
		}
	}
	return n
}

// generatedStore opens a fresh store of the back end holding n synthetic
// tasks of company "c"; it is closed when b ends.
func generatedStore(b *testing.B, backend string, n int) (store.Store, store.SyntheticTasks) {
	dsn := filepath.Join(b.TempDir(), "bench.db")
	if backend == "postgres" {
		dsn = pgtest.NewDatabase(b)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	start := time.Now()
	spec := store.SyntheticTasks{Company: "c", User: "owner", N: n, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := store.GenerateTasks(ctx, st, spec); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d tasks written in %s", backend, n, time.Since(start).Round(time.Millisecond))
	return st, spec
}
