package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/goclearml/agent/internal/webui"
)

// UIConfig configures the web UI of a server process.
type UIConfig struct {
	// Disabled runs no web UI.
	Disabled bool
	// Prefix mounts the UI under a path ("/clearml") instead of the root,
	// for a reverse proxy that forwards that path.
	Prefix string
}

// mountUI serves the web UI next to the API (and the file server) on one
// listener: the UI's paths go to it, the others (service.action, /files)
// to next. It returns the UI's address below url.
func mountUI(ctx context.Context, cfg UIConfig, srv *Server, files http.Handler, filesURL, url string, next http.Handler,
	log *slog.Logger) (http.Handler, string, error) {
	ui, err := webui.New(webui.Config{Prefix: cfg.Prefix, API: srv, Files: files, FilesURL: filesURL, Context: ctx,
		Log: log.With("component", "ui")})
	if err != nil {
		return nil, "", err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ui.Owns(r.URL.Path) {
			ui.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
	return h, strings.TrimRight(ui.URL(url), "/"), nil
}
