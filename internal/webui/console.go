package webui

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A task's console: the newest lines first, earlier ones a page at a time
// (a log of a million lines is never loaded whole), new ones live over
// Server-Sent Events, a search over the whole log, and a download. The
// reading itself is in logread.go.

// consoleLines answers the "earlier lines" fetches.
func (u *UI) consoleLines(w http.ResponseWriter, r *http.Request, s *session, id string) {
	before := r.URL.Query().Get("before")
	if _, err := strconv.ParseInt(before, 10, 64); err != nil {
		u.fail(w, r, s, http.StatusBadRequest, "before must be the timestamp a page gave (data-earlier)")
		return
	}
	p, err := u.logPage(r.Context(), s, id, before, logPageSize)
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// consoleStream sends the log lines added after a cursor as Server-Sent
// Events ("lines", with the cursor as the event id, so a reconnecting
// browser resumes where it was) until the browser leaves or the server
// shuts down.
func (u *UI) consoleStream(w http.ResponseWriter, r *http.Request, s *session, id string) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		u.fail(w, r, s, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	cursor := parseCursor(r.URL.Query().Get("after"))
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		cursor = parseCursor(last)
	}
	ctx, cancel := u.stopping(r)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	tick := time.NewTicker(u.cfg.Poll)
	defer tick.Stop()
	idle := 0
	for {
		fresh, total, full, err := u.logAfter(ctx, s, id, cursor)
		if err != nil {
			if ctx.Err() == nil {
				b, _ := json.Marshal(map[string]string{"error": message(err)})
				fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
				flusher.Flush()
			}
			return
		}
		if len(fresh) > 0 {
			cursor, idle = cursor.advance(fresh), 0
			b, _ := json.Marshal(map[string]any{"lines": linesOf(fresh), "total": total})
			fmt.Fprintf(w, "id: %s\nevent: lines\ndata: %s\n\n", cursor, b)
			flusher.Flush()
			if full {
				continue // more are waiting
			}
		} else if idle++; idle%15 == 0 {
			fmt.Fprint(w, ": keep-alive\n\n") // for proxies that close idle streams
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// consoleDownload sends the whole log as a text file.
func (u *UI) consoleDownload(w http.ResponseWriter, r *http.Request, s *session, id string) {
	// Check the task first: once the file has started, an error can only
	// cut it short.
	if _, err := u.logEvents(r.Context(), s, id, false, nil, 1); err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="task-`+id+`.log"`)
	bw := bufio.NewWriterSize(w, 64<<10)
	err := u.eachLogBatch(r.Context(), s, id, func(lines []logLine) bool {
		for _, l := range lines {
			bw.WriteString(l.Text)
			bw.WriteByte('\n')
		}
		return true
	})
	if err != nil {
		fmt.Fprintf(bw, "\n[download cut short: %s]\n", message(err))
	}
	bw.Flush()
}

// searchMatch is a console line that matched a search.
type searchMatch struct {
	Line int `json:"n"`
	logLine
}

// consoleSearch finds the lines that contain a text (any case), in the
// whole log, up to max matches.
func (u *UI) consoleSearch(w http.ResponseWriter, r *http.Request, s *session, id string) {
	q := strings.ToLower(r.URL.Query().Get("q"))
	if q == "" {
		u.fail(w, r, s, http.StatusBadRequest, "q (the text to find) is required")
		return
	}
	limit := 1000
	if n, err := strconv.Atoi(r.URL.Query().Get("max")); err == nil && n > 0 {
		limit = min(n, 10000)
	}
	matches := []searchMatch{}
	n, truncated := 0, false
	err := u.eachLogBatch(r.Context(), s, id, func(lines []logLine) bool {
		for _, l := range lines {
			n++
			if strings.Contains(strings.ToLower(l.Text), q) {
				if len(matches) == limit {
					truncated = true
					return false
				}
				matches = append(matches, searchMatch{Line: n, logLine: l})
			}
		}
		return true
	})
	if err != nil {
		u.failAPI(w, r, s, "Task "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"matches": matches, "scanned": n, "truncated": truncated})
}
