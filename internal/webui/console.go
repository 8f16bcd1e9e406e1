package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A task's console: the newest lines first, earlier ones a page at a time
// (a log of a million lines is never loaded whole), new ones live over
// Server-Sent Events, a search over the whole log, and a download.

// logPageSize is how many log events a console page or "earlier" step
// loads; the browser keeps at most logKeep lines.
const (
	logPageSize = 500
	logScanSize = 10000
)

// logLine is one console line.
type logLine struct {
	Time  string `json:"t"`
	Level string `json:"l,omitempty"`
	Text  string `json:"x"`
}

// logPage is a page of a task's log, oldest line first.
type logPage struct {
	Lines []logLine `json:"lines"`
	// Earlier continues with the lines before these ("" when there are
	// none); Newest is where the live stream starts.
	Earlier string `json:"earlier"`
	Newest  string `json:"newest,omitempty"`
	Total   int    `json:"total"`
}

type eventsResponse struct {
	Events   []map[string]any `json:"events"`
	Returned int              `json:"returned"`
	Total    int              `json:"total"`
	ScrollID string           `json:"scroll_id"`
}

func (u *UI) logEvents(ctx context.Context, s *session, id, order, scroll string, n int) (*eventsResponse, error) {
	var resp eventsResponse
	body := map[string]any{"task": id, "event_type": "log", "order": order, "batch_size": n}
	if scroll != "" {
		body["scroll_id"] = scroll
	}
	err := s.call(ctx, "events.get_task_events", body, &resp)
	return &resp, err
}

// linesOf splits log events (in order) into console lines.
func linesOf(events []map[string]any) []logLine {
	var out []logLine
	for _, e := range events {
		ev := taskDoc(e)
		ts := ""
		if ms, ok := e["timestamp"].(float64); ok {
			ts = time.UnixMilli(int64(ms)).UTC().Format("2006-01-02 15:04:05.000")
		}
		msg := strings.TrimRight(ev.str("msg"), "\n")
		for _, l := range strings.Split(msg, "\n") {
			out = append(out, logLine{Time: ts, Level: ev.str("level"), Text: strings.TrimRight(l, "\r")})
		}
	}
	return out
}

// logPage reads n log events before the cursor (the newest ones for "").
func (u *UI) logPage(ctx context.Context, s *session, id, before string, n int) (*logPage, error) {
	resp, err := u.logEvents(ctx, s, id, "desc", before, n)
	if err != nil {
		return nil, err
	}
	slices.Reverse(resp.Events)
	p := &logPage{Lines: linesOf(resp.Events), Total: resp.Total}
	if len(resp.Events) == n {
		p.Earlier = resp.ScrollID
	}
	if before == "" {
		newest, err := u.logEvents(ctx, s, id, "desc", "", 1)
		if err != nil {
			return nil, err
		}
		p.Newest = newest.ScrollID
	}
	return p, nil
}

// consoleLines answers the "earlier lines" fetches.
func (u *UI) consoleLines(w http.ResponseWriter, r *http.Request, s *session, id string) {
	before := r.URL.Query().Get("before")
	if before == "" {
		u.fail(w, r, s, http.StatusBadRequest, "before is required")
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
	cursor := r.URL.Query().Get("after")
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		cursor = last
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
		resp, err := u.logEvents(ctx, s, id, "asc", cursor, 1000)
		if err != nil {
			if ctx.Err() == nil {
				b, _ := json.Marshal(map[string]string{"error": message(err)})
				fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
				flusher.Flush()
			}
			return
		}
		if len(resp.Events) > 0 {
			cursor, idle = resp.ScrollID, 0
			b, _ := json.Marshal(map[string]any{"lines": linesOf(resp.Events), "total": resp.Total})
			fmt.Fprintf(w, "id: %s\nevent: lines\ndata: %s\n\n", cursor, b)
			flusher.Flush()
			if len(resp.Events) == 1000 {
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

// eachLogBatch calls fn with the whole log, oldest first, a batch at a time.
func (u *UI) eachLogBatch(ctx context.Context, s *session, id string, fn func([]logLine) bool) error {
	cursor := ""
	for {
		resp, err := u.logEvents(ctx, s, id, "asc", cursor, logScanSize)
		if err != nil {
			return err
		}
		if len(resp.Events) == 0 || !fn(linesOf(resp.Events)) || len(resp.Events) < logScanSize {
			return nil
		}
		cursor = resp.ScrollID
	}
}

// consoleDownload sends the whole log as a text file.
func (u *UI) consoleDownload(w http.ResponseWriter, r *http.Request, s *session, id string) {
	// Check the task first: once the file has started, an error can only
	// cut it short.
	if _, err := u.logEvents(r.Context(), s, id, "asc", "", 1); err != nil {
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
