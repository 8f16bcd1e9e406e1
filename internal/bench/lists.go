package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/store"
)

// listQueries are the tasks.get_all requests of the lists scenario: what
// the web UI, the SDK and the daemons ask most, a page of 10 each.
var listQueries = []struct {
	name string
	body map[string]any
}{
	{"newest first", map[string]any{"order_by": []string{"-created"}, "page": 0, "page_size": 10}},
	{"last updated first", map[string]any{"order_by": []string{"-last_update"}, "page": 0, "page_size": 10}},
	{"one project, running, by update", map[string]any{"project": []string{"P7"}, "status": []string{"in_progress"},
		"order_by": []string{"-last_update"}, "page": 0, "page_size": 10}},
	{"queued", map[string]any{"status": []string{"queued"}, "order_by": []string{"-created"}, "page": 0, "page_size": 10}},
	{"tagged", map[string]any{"tags": []string{"best"}, "order_by": []string{"-created"}, "page": 0, "page_size": 10}},
	{"not archived, page 1000", map[string]any{"system_tags": []string{"-archived"}, "order_by": []string{"-created"},
		"page": 1000, "page_size": 10}},
	{"by id (the daemon's abort check)", nil}, // filled in with an id
	{"text search", map[string]any{"search_text": "experiment 4242", "order_by": []string{"-created"}, "page": 0, "page_size": 10}},
	{"by name", map[string]any{"order_by": []string{"name"}, "page": 0, "page_size": 10}},
	{"by name, descending", map[string]any{"order_by": []string{"-name"}, "page": 0, "page_size": 10}},
	// A click on the web UI's status and type columns, as its tasks page
	// asks (archived tasks left out).
	{"by status", map[string]any{"system_tags": []string{"-archived"}, "order_by": []string{"status"}, "page": 0, "page_size": 10}},
	{"by status, descending", map[string]any{"system_tags": []string{"-archived"}, "order_by": []string{"-status"},
		"page": 0, "page_size": 10}},
	{"by type", map[string]any{"system_tags": []string{"-archived"}, "order_by": []string{"type"}, "page": 0, "page_size": 10}},
	{"by type, descending", map[string]any{"system_tags": []string{"-archived"}, "order_by": []string{"-type"},
		"page": 0, "page_size": 10}},
	// As the web UI's queue throughput asks (with its own time bound).
	{"started since, latest first", map[string]any{"started": ">=2025-01-01T12:00:00", "order_by": []string{"-started"},
		"page": 0, "page_size": 10}},
}

// runLists: tasks.get_all over a server holding 100,000 and then
// 1,000,000 tasks (written in bulk with store.GenerateTasks while the
// server is stopped), on SQLite and PostgreSQL: each listing's p50 and
// max over the samples, and a scroll of 100 pages of 10.
func runLists(ctx context.Context, r *runner) ([]Result, error) {
	var out []Result
	sizes := []int{100_000, 1_000_000}
	if r.quick {
		sizes = []int{100_000}
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		rows, err := r.listsOn(ctx, backend, sizes)
		if err == errNoPostgres {
			out = append(out, Result{Metric: "postgres: listings", Skipped: err.Error()})
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (r *runner) listsOn(ctx context.Context, backend string, sizes []int) ([]Result, error) {
	// The synthetic tasks were last updated long ago: the server's
	// watchdog would stop the ones in progress while they are listed.
	b, err := r.startBackend(ctx, backend, "--watchdog-threshold", "1000000h")
	if err != nil {
		return nil, err
	}
	defer b.close()
	var me struct {
		User struct {
			ID      string `json:"id"`
			Company struct {
				ID string `json:"id"`
			} `json:"company"`
		} `json:"user"`
	}
	if err := b.api.Call(ctx, "", "users.get_current_user", nil, &me, apiclient.Default); err != nil {
		return nil, fmt.Errorf("reading the bench user: %w", err)
	}
	dsn := filepath.Join(b.st.dir, "server", "clearml.db")
	if b.dsn != "" {
		dsn = b.dsn
	}
	var out []Result
	stored := 0
	for _, n := range sizes {
		// SQLite's file is the server's alone while it runs.
		b.srv.stop(20 * time.Second)
		start := time.Now()
		st, err := store.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("opening the server's database: %w", err)
		}
		err = store.GenerateTasks(ctx, st, store.SyntheticTasks{Company: me.User.Company.ID, User: me.User.ID, N: n - stored,
			Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(stored) * time.Second), Prefix: fmt.Sprintf("%x", n)})
		st.Close()
		if err != nil {
			return nil, err
		}
		fill, written := time.Since(start), n-stored
		stored = n
		if err := b.restart(ctx); err != nil {
			return nil, err
		}
		label := fmt.Sprintf("%s, %s tasks", backend, formatValue(float64(n)))
		out = append(out, Result{Metric: label + ": bulk write", Value: ms(fill), Unit: "ms", N: written,
			Note: "store.GenerateTasks, server stopped"})
		rows, err := r.listSamples(ctx, b, label)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// listSamples times each listing, then a scroll.
func (r *runner) listSamples(ctx context.Context, b *backend, label string) ([]Result, error) {
	samples := r.size(20, 5)
	var out []Result
	var someID string
	for _, q := range listQueries {
		body := q.body
		if body == nil {
			body = map[string]any{"id": []string{someID}, "only_fields": []string{"status", "status_message"}, "search_hidden": true}
		}
		var ds []time.Duration
		for i := range samples + 1 {
			var resp struct {
				Tasks []struct {
					ID string `json:"id"`
				} `json:"tasks"`
			}
			start := time.Now()
			if err := b.api.Call(ctx, "", "tasks.get_all", body, &resp, apiclient.Default); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", label, q.name, err)
			}
			if i > 0 { // the first warms the caches
				ds = append(ds, time.Since(start))
			}
			if len(resp.Tasks) == 0 {
				return nil, fmt.Errorf("%s: %s: no tasks listed (sample %d)", label, q.name, i)
			}
			if someID == "" {
				someID = resp.Tasks[0].ID
			}
		}
		p50, _, mx := percentiles(ds)
		out = append(out, Result{Metric: label + ": " + q.name + " p50", Value: ms(p50), Unit: "ms", N: len(ds)},
			Result{Metric: label + ": " + q.name + " max", Value: ms(mx), Unit: "ms", N: len(ds)})
	}
	// A scroll, newest first: 100 pages of 10.
	pages := r.size(100, 20)
	scroll := ""
	start := time.Now()
	for range pages {
		body := map[string]any{"order_by": []string{"-created"}, "size": 10, "only_fields": []string{"id", "name", "status"}}
		if scroll != "" {
			body["scroll_id"] = scroll
		}
		var resp struct {
			Tasks    []map[string]any `json:"tasks"`
			ScrollID string           `json:"scroll_id"`
		}
		if err := b.api.Call(ctx, "", "tasks.get_all", body, &resp, apiclient.Default); err != nil {
			return nil, fmt.Errorf("%s: scroll: %w", label, err)
		}
		if len(resp.Tasks) != 10 {
			return nil, fmt.Errorf("%s: scroll: a page of %d tasks", label, len(resp.Tasks))
		}
		scroll = resp.ScrollID
	}
	out = append(out, Result{Metric: label + ": scroll, a page of 10", Value: ms(time.Since(start)) / float64(pages), Unit: "ms",
		N: pages, Note: "mean over a scroll from the newest task"})
	return out, nil
}
