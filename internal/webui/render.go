package webui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// pageTemplate is the layout with one page's content.
type pageTemplate struct{ t *template.Template }

// page is what every template gets.
type page struct {
	Title  string
	Prefix string
	// Nav names the active section of the navigation.
	Nav  string
	S    *session
	Data any
	// Assets maps a static file to its versioned URL.
	Assets map[string]string
}

var pageNames = []string{"login", "error", "dashboard", "tasks", "compare", "queues", "workers", "projects",
	"task_overview", "task_console", "task_scalars", "task_plots", "task_debugsamples", "task_hyperparams",
	"task_configuration", "task_artifacts"}

func parsePages() (map[string]*pageTemplate, error) {
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		files := []string{"templates/layout.html", "templates/" + name + ".html"}
		if strings.HasPrefix(name, "task_") {
			files = append(files, "templates/task.html") // a task's header and tabs
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, files...)
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", name, err)
		}
		out[name] = &pageTemplate{t: t}
	}
	return out, nil
}

// render writes a page. s is nil on the sign-in page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	nav, _, _ := strings.Cut(name, "_")
	if nav == "task" || nav == "compare" {
		nav = "tasks"
	}
	p := page{Title: title, Prefix: u.cfg.Prefix, Nav: nav, S: s, Data: data, Assets: u.assetURLs()}
	var buf bytes.Buffer
	if err := u.pages[name].t.Execute(&buf, p); err != nil {
		u.cfg.Log.Error("web UI: rendering a page", "page", name, "err", err)
		http.Error(w, "error rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an error: a page for a page load, JSON for a fetch.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"error": msg})
		return
	}
	title := http.StatusText(status)
	u.render(w, r, s, status, "error", title, map[string]any{"Status": status, "Message": msg})
}

// failAPI shows a failed API call: 404 for an unknown object, else the
// API's own message and status.
func (u *UI) failAPI(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	status := http.StatusInternalServerError
	if notFound(err) {
		u.fail(w, r, s, http.StatusNotFound, what+" was not found: "+message(err))
		return
	}
	if ae, ok := asAPIError(err); ok && ae.Code >= 400 && ae.Code < 600 {
		status = ae.Code
	}
	u.fail(w, r, s, status, message(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// staticFile is an embedded asset with its content hash.
type staticFile struct {
	data []byte
	hash string
	mime string
}

func loadStatic() (map[string]staticFile, error) {
	out := map[string]staticFile{}
	err := fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		out[name] = staticFile{data: b, hash: hex.EncodeToString(sum[:6]), mime: mime.TypeByExtension(path.Ext(p))}
		return nil
	})
	return out, err
}

func (u *UI) assetURLs() map[string]string {
	m := make(map[string]string, len(u.static))
	for name, f := range u.static {
		m[name] = u.path("/static/" + name + "?v=" + f.hash)
	}
	return m
}

// serveStatic serves an embedded file; versioned URLs are cached for good.
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := u.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.mime != "" {
		w.Header().Set("Content-Type", f.mime)
	}
	if r.URL.Query().Get("v") == f.hash {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", `"`+f.hash+`"`)
	if r.Header.Get("If-None-Match") == `"`+f.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(f.data)
}

var funcs = template.FuncMap{
	"ago":      ago,
	"when":     when,
	"duration": duration,
	"short":    func(id string) string { return id[:min(len(id), 8)] },
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"bytes":   humanBytes,
	"has":     func(list []string, v string) bool { return contains(list, v) },
	"add":     func(a, b int) int { return a + b },
	"percent": func(v float64) string { return fmt.Sprintf("%.0f%%", v) },
	"join":    strings.Join,
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// parseTime reads an API time ("2024-05-01T12:00:00.000000+00:00").
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000000+00:00", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// when formats an API time in UTC, to the second.
func when(s string) string {
	t, ok := parseTime(s)
	if !ok {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// ago is a short relative time ("3 min ago").
func ago(s string) string {
	t, ok := parseTime(s)
	if !ok {
		return ""
	}
	return duration(time.Since(t).Seconds()) + " ago"
}

// duration formats seconds briefly ("2 h 5 min").
func duration(sec float64) string {
	if sec < 0 || math.IsNaN(sec) {
		sec = 0
	}
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
