// Package webui is the server's web UI: server-rendered pages (html/template
// and files embedded in the binary, a little hand-written JavaScript, no
// build step, nothing fetched from elsewhere) to see and steer the work:
// tasks, their console, scalars, plots and debug samples, queues, workers
// and projects.
//
// The UI is a client of the API, in process: every page reads through the
// API's own handlers and every action is an API call, made with the
// signed-in user's credentials. So the UI can do exactly what that user
// could do with the API, and nothing more: a guest, whom the API refuses
// every change, cannot change anything here either.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures the UI.
type Config struct {
	// Prefix is where the UI lives on the listener ("" for the root, or a
	// path such as "/clearml" behind a reverse proxy).
	Prefix string
	// API is the server's API handler (without the UI).
	API http.Handler
	// Files is the file server's handler when it runs on the same listener
	// under FilesPrefix; the UI serves downloads and debug images through
	// it with the user's credentials. Nil when there is none.
	Files       http.Handler
	FilesPrefix string
	// FilesURL is the file server's public address (files_server): file
	// links under it are served through Files.
	FilesURL string
	// Context ends when the server shuts down: live streams end then.
	Context context.Context
	// Poll is how often live pages and streams look for news (1 s).
	Poll time.Duration
	Log  *slog.Logger
}

// UI serves the web UI. Create it with New.
type UI struct {
	cfg    Config
	pages  map[string]*pageTemplate
	static map[string]staticFile
}

// New prepares the UI (parses its templates).
func New(cfg Config) (*UI, error) {
	cfg.Prefix = strings.TrimRight(cfg.Prefix, "/")
	if cfg.Prefix != "" && !strings.HasPrefix(cfg.Prefix, "/") {
		cfg.Prefix = "/" + cfg.Prefix
	}
	if cfg.API == nil {
		return nil, errors.New("web UI: no API handler")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	u := &UI{cfg: cfg}
	var err error
	if u.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	if u.static, err = loadStatic(); err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	return u, nil
}

// uiRoots are the first path segments the UI serves at the root of a
// listener it shares with the API (whose paths are service.action).
var uiRoots = map[string]bool{"": true, "login": true, "logout": true, "static": true, "tasks": true,
	"compare": true, "queues": true, "workers": true, "projects": true, "ui-files": true}

// Owns reports whether the UI serves path; the API serves the others.
func (u *UI) Owns(path string) bool {
	if u.cfg.Prefix != "" {
		return path == u.cfg.Prefix || strings.HasPrefix(path, u.cfg.Prefix+"/")
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return uiRoots[first]
}

// URL is the UI's address below a server address.
func (u *UI) URL(server string) string { return strings.TrimRight(server, "/") + u.cfg.Prefix + "/" }

// path returns the UI's path for p ("/tasks/x").
func (u *UI) path(p string) string { return u.cfg.Prefix + p }

// ServeHTTP routes a UI request.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self'; "+
		"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	p := strings.TrimPrefix(r.URL.Path, u.cfg.Prefix)
	if p == "" {
		http.Redirect(w, r, u.path("/"), http.StatusMovedPermanently)
		return
	}
	if p == "/login" {
		u.login(w, r)
		return
	}
	if rest, ok := strings.CutPrefix(p, "/static/"); ok {
		u.serveStatic(w, r, rest)
		return
	}
	s, err := u.session(w, r)
	if err != nil {
		u.unauthenticated(w, r, err)
		return
	}
	if r.Method == http.MethodPost {
		if err := u.checkCSRF(r, s); err != nil {
			u.fail(w, r, s, http.StatusForbidden, err.Error())
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		u.fail(w, r, s, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	u.route(w, r, s, p)
}

// route dispatches a signed-in request on its path below the prefix.
func (u *UI) route(w http.ResponseWriter, r *http.Request, s *session, p string) {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	post := r.Method == http.MethodPost
	switch {
	case p == "/":
		u.dashboard(w, r, s)
	case p == "/logout" && post:
		u.logout(w, r, s)
	case p == "/tasks" && !post:
		u.tasksPage(w, r, s)
	case p == "/tasks/actions" && post:
		u.taskActions(w, r, s)
	case seg[0] == "tasks" && len(seg) >= 2:
		u.taskRoute(w, r, s, seg[1], strings.Join(seg[2:], "/"))
	case p == "/compare" && !post:
		u.comparePage(w, r, s)
	case p == "/queues" && !post:
		u.queuesPage(w, r, s)
	case p == "/queues/actions" && post:
		u.queueActions(w, r, s)
	case p == "/workers" && !post:
		u.workersPage(w, r, s)
	case p == "/projects" && !post:
		u.projectsPage(w, r, s)
	case seg[0] == "projects" && len(seg) >= 4 && (seg[2] == "experiments" || seg[2] == "tasks"):
		u.resultsPageRedirect(w, r, seg[3], seg[4:])
	case seg[0] == "ui-files" && len(seg) >= 2 && !post:
		u.serveFile(w, r, s, strings.TrimPrefix(p, "/ui-files"))
	default:
		u.fail(w, r, s, http.StatusNotFound, "There is no page at "+p+".")
	}
}

// taskRoute dispatches /tasks/<id>/<tab>.
func (u *UI) taskRoute(w http.ResponseWriter, r *http.Request, s *session, id, tab string) {
	post := r.Method == http.MethodPost
	switch {
	case post && tab == "hyper-params":
		u.editHyperParams(w, r, s, id)
	case post:
		u.fail(w, r, s, http.StatusNotFound, "There is no action here.")
	case tab == "status":
		u.taskStatus(w, r, s, id)
	case tab == "console/stream":
		u.consoleStream(w, r, s, id)
	case tab == "console/lines":
		u.consoleLines(w, r, s, id)
	case tab == "console/download":
		u.consoleDownload(w, r, s, id)
	case tab == "console/search":
		u.consoleSearch(w, r, s, id)
	case tab == "scalars/data":
		u.scalarsData(w, r, s, id)
	case tab == "plots/data":
		u.plotsData(w, r, s, id)
	default:
		u.taskPage(w, r, s, id, tab)
	}
}

// resultsPageRedirect serves the SDK's "results page" links,
// /projects/<project>/experiments/<task>/output/log (and /tasks/ with API
// 2.31), on the matching page of the task.
func (u *UI) resultsPageRedirect(w http.ResponseWriter, r *http.Request, task string, rest []string) {
	tab := ""
	switch strings.Join(rest, "/") {
	case "output/log":
		tab = "/console"
	case "output/metrics/scalar":
		tab = "/scalars"
	case "output/metrics/plots":
		tab = "/plots"
	case "output/debugImages":
		tab = "/debug-samples"
	case "hyper-params/hyper-param/General", "hyper-params":
		tab = "/hyper-params"
	case "artifacts/output-model", "artifacts":
		tab = "/artifacts"
	}
	http.Redirect(w, r, u.path("/tasks/"+task+tab), http.StatusFound)
}

// stopping is a context that ends with the request or at shutdown.
func (u *UI) stopping(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(u.cfg.Context, cancel)
	return ctx, func() { stop(); cancel() }
}
