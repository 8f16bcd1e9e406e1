package webui_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
	"github.com/goclearml/agent/internal/webui"
)

// TestStreamsEndAtShutdown: a console's live stream ends when the server
// shuts down (the UI's context ends), not when the browser leaves, so a
// graceful shutdown does not wait for open pages.
func TestStreamsEndAtShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ui.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := server.Bootstrap(ctx, st); err != nil {
		t.Fatal(err)
	}
	cr, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(st, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	life, shutdown := context.WithCancel(ctx)
	defer shutdown()
	ui, err := webui.New(webui.Config{API: srv, Context: life})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ui.Owns(r.URL.Path) {
			ui.ServeHTTP(w, r)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	defer hs.Close()
	auth := basic(cr.AccessKey, cr.SecretKey)
	req, _ := http.NewRequest("POST", hs.URL+"/tasks.create", strings.NewReader(`{"name":"streamed","type":"training"}`))
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := strings.Split(strings.Split(string(body), `"id":"`)[1], `"`)[0]
	// A stream the shutdown did not end fails the test at this deadline.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ = http.NewRequestWithContext(rctx, "GET", hs.URL+"/tasks/"+id+"/console/stream", nil)
	req.Header.Set("Authorization", auth)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "retry:") {
		t.Fatalf("stream start: %q", sc.Text())
	}
	shutdown()
	for sc.Scan() {
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the stream ended with %v, want its end", err)
	}
}
