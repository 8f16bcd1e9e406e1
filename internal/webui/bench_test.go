package webui_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
	"github.com/goclearml/agent/internal/webui"
)

// The server time of the UI's heaviest pages, in process (no browser, no
// network): the tasks page over 100,000 tasks and the console of a task
// with 1,000,000 log lines. Run with
//
//	go test -run '^$' -bench . -benchtime 20x ./internal/webui/
//
// Filling the databases takes a few minutes; it happens once per back end.

const (
	benchTasks    = 100_000
	benchLogLines = 1_000_000
)

// benchUI is a UI (and the API under it) over a filled store.
type benchUI struct {
	ui      *webui.UI
	api     http.Handler
	auth    string
	logTask string
}

// fill makes a store with benchTasks tasks (in 20 projects, every status)
// and one task with benchLogLines log lines, and a UI over it.
func fill(b *testing.B, dsn string) (*benchUI, error) {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() { st.Close() })
	logTask := fmt.Sprintf("%032x", 1)
	filled := false
	st.View(ctx, func(tx store.Tx) error {
		n, err := tx.CountEvents(logTask, []string{"log"})
		filled = n == benchLogLines
		return err
	})
	if err := server.Bootstrap(ctx, st); err != nil {
		return nil, err
	}
	var admin string
	st.View(ctx, func(tx store.Tx) error {
		users, err := tx.Users(api.DefaultCompany)
		if len(users) > 0 {
			admin = users[0].ID
		}
		return err
	})
	if filled {
		return serve(st)
	}
	statuses := []string{api.StatusCreated, api.StatusQueued, api.StatusInProgress, api.StatusStopped, api.StatusCompleted, api.StatusFailed}
	base := time.Now().Add(-benchTasks * time.Minute)
	script := map[string]any{"repository": "https://github.com/example/vision.git", "branch": "main", "version_num": "4f1c2a9d",
		"entry_point": "train.py", "working_dir": ".", "binary": "python3",
		"requirements": map[string]any{"pip": strings.Repeat("package-name==1.2.3\n", 40)}}
	for start := 0; start < benchTasks; start += 2000 {
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := start; i < start+2000; i++ {
				at := api.NewTime(base.Add(time.Duration(i) * time.Minute))
				t := &api.Task{ID: fmt.Sprintf("%032x", i+1), Name: fmt.Sprintf("experiment %d lr=%g", i, 0.1/float64(i%7+1)),
					User: admin, Company: api.DefaultCompany, Type: "training", Status: statuses[i%len(statuses)],
					Project: fmt.Sprintf("project%02d", i%20), Created: at, Started: at, LastUpdate: at,
					Tags: []string{fmt.Sprintf("tag%d", i%5)}, SystemTags: []string{}, Script: script,
					Hyperparams: map[string]map[string]api.ParamItem{"Args": {"lr": {Section: "Args", Name: "lr", Value: "0.1"}}}}
				if err := tx.PutTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("adding tasks: %w", err)
		}
	}
	for start := 0; start < benchLogLines; start += 20000 {
		err := st.Update(ctx, func(tx store.Tx) error {
			for i := start; i < start+20000; i++ {
				doc, _ := json.Marshal(map[string]any{"type": "log", "task": logTask, "level": "info", "worker": "bench",
					"timestamp": base.UnixMilli() + int64(i), "msg": fmt.Sprintf("epoch %d step %d loss %.5f", i/10000, i, 1/float64(i+1))})
				if err := tx.AddEvent(&store.Event{TaskID: logTask, Type: "log", Timestamp: base.UnixMilli() + int64(i), Doc: doc}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("adding log events: %w", err)
		}
	}
	if strings.HasPrefix(dsn, "postgres") {
		// As autovacuum would soon after such a load: the planner needs
		// the tables' statistics.
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		if _, err := db.Exec(`ANALYZE`); err != nil {
			return nil, fmt.Errorf("analyzing: %w", err)
		}
	}
	return serve(st)
}

// serve makes a UI over a filled store, with new credentials.
func serve(st store.Store) (*benchUI, error) {
	ctx := context.Background()
	cr, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		return nil, err
	}
	srv, err := server.New(st, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		return nil, err
	}
	ui, err := webui.New(webui.Config{API: srv})
	if err != nil {
		return nil, err
	}
	return &benchUI{ui: ui, api: srv, auth: basic(cr.AccessKey, cr.SecretKey), logTask: fmt.Sprintf("%032x", 1)}, nil
}

// get serves one page and checks it.
func (e *benchUI) get(b *testing.B, path, want string) string {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", e.auth)
	rec := httptest.NewRecorder()
	e.ui.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(body), want) {
		b.Fatalf("GET %s: %d, %q not in %.400s", path, rec.Code, want, body)
	}
	return string(body)
}

// BenchmarkUI serves, per back end: the tasks page (50 rows) over 100,000
// tasks (the default view, newest first and not archived; a status
// filter; a text search; a sort on another column; a deep page), a task's
// console page when the task logged 1,000,000 lines (the newest 500 shown)
// and one "earlier lines" step there; and, for comparison, one page of
// tasks.get_all with a filter the listing table cannot serve (a name
// pattern), for which the server reads every task.
func BenchmarkUI(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "bench.db")
			if dir := os.Getenv("UI_BENCH_KEEP"); dir != "" && backend == "sqlite" {
				dsn = filepath.Join(dir, "bench.db") // kept, and reused when filled already
			}
			if backend == "postgres" {
				dsn = pgtest.NewDatabase(b) // skips without PostgreSQL
			}
			start := time.Now()
			e, err := fill(b, dsn)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: filled with %d tasks and %d log lines in %s", backend, benchTasks, benchLogLines, time.Since(start).Round(time.Second))
			for _, v := range []struct{ name, query, want string }{
				{"tasks/newest", "", "experiment 99999 "},
				{"tasks/status=failed", "?status=failed", "experiment 99995 "},
				{"tasks/search", "?q=experiment+4242+", "experiment 4242 "},
				{"tasks/sort=name", "?sort=name&dir=asc", "experiment 0 "},
				{"tasks/page=1000", "?page=1000", "experiment 49999 "},
			} {
				b.Run(v.name, func(b *testing.B) {
					defer cpuPerOp(b)()
					for b.Loop() {
						e.get(b, "/tasks"+v.query, v.want)
					}
				})
			}
			b.Run("console", func(b *testing.B) {
				defer cpuPerOp(b)()
				for b.Loop() {
					e.get(b, "/tasks/"+e.logTask+"/console", fmt.Sprintf("step %d ", benchLogLines-1))
				}
			})
			cursor := earlierExp.FindStringSubmatch(e.get(b, "/tasks/"+e.logTask+"/console", "step"))[1]
			b.Run("console-earlier", func(b *testing.B) {
				defer cpuPerOp(b)()
				for b.Loop() {
					e.get(b, "/tasks/"+e.logTask+"/console/lines?before="+cursor, fmt.Sprintf("step %d ", benchLogLines-501))
				}
			})
			b.Run("tasks.get_all-generic", func(b *testing.B) {
				defer cpuPerOp(b)()
				for b.Loop() {
					req := httptest.NewRequest("POST", "/tasks.get_all", strings.NewReader(
						`{"name":"^experiment","page_size":50,"order_by":["-created"],"only_fields":["id","name"]}`))
					req.Header.Set("Authorization", e.auth)
					rec := httptest.NewRecorder()
					e.api.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "experiment 99999 ") {
						b.Fatalf("tasks.get_all: %d %.300s", rec.Code, rec.Body.String())
					}
				}
			})
		})
	}
}

var earlierExp = regexp.MustCompile(`data-earlier="([^"]+)"`)

// cpuPerOp reports the process's CPU time (user and system) per
// operation, "cpu-ms/op": on a machine shared with other work the wall
// time (ns/op) grows with the load, the CPU time much less. Call it as
// defer cpuPerOp(b)().
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
