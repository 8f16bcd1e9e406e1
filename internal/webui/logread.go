package webui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reading a task's log through events.get_task_log: pages before a
// timestamp, the events after a cursor (the live stream), and the whole
// log in batches (search, download). A batch of that call holds every
// event of its last timestamp, so continuing from that timestamp misses
// none; and it counts the log only up to 10,000 events, which keeps a
// million-line log as quick to page as a short one.

// logPageSize is how many log events a console page or "earlier" step
// loads; logScanSize is the batch of a search or a download.
const (
	logPageSize = 500
	logScanSize = 10000
	logLiveSize = 1000
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
	// Total is the number of log events, up to 10,000 (the API's cap).
	Total int `json:"total"`
}

type logResponse struct {
	Events []map[string]any `json:"events"`
	Total  int              `json:"total"`
}

// logEvents reads up to n log events, oldest first: before a timestamp
// (earlier) or after one (from nil: from either end).
func (u *UI) logEvents(ctx context.Context, s *session, id string, earlier bool, from *int64, n int) (*logResponse, error) {
	var resp logResponse
	body := map[string]any{"task": id, "navigate_earlier": earlier, "order": "asc", "batch_size": n}
	if from != nil {
		body["from_timestamp"] = *from
	}
	err := s.call(ctx, "events.get_task_log", body, &resp)
	return &resp, err
}

func eventTime(e map[string]any) int64 {
	ms, _ := e["timestamp"].(float64)
	return int64(ms)
}

// linesOf splits log events (in order) into console lines.
func linesOf(events []map[string]any) []logLine {
	var out []logLine
	for _, e := range events {
		ev := taskDoc(e)
		ts := time.UnixMilli(eventTime(e)).UTC().Format("2006-01-02 15:04:05.000")
		msg := strings.TrimRight(ev.str("msg"), "\n")
		for _, l := range strings.Split(msg, "\n") {
			out = append(out, logLine{Time: ts, Level: ev.str("level"), Text: strings.TrimRight(l, "\r")})
		}
	}
	return out
}

// logPage reads n log events before a timestamp (the newest ones for "").
func (u *UI) logPage(ctx context.Context, s *session, id, before string, n int) (*logPage, error) {
	var from *int64
	if before != "" {
		ts, err := strconv.ParseInt(before, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("before must be a timestamp: %w", err)
		}
		from = &ts
	}
	resp, err := u.logEvents(ctx, s, id, true, from, n)
	if err != nil {
		return nil, err
	}
	p := &logPage{Lines: linesOf(resp.Events), Total: resp.Total}
	if len(resp.Events) >= n {
		p.Earlier = strconv.FormatInt(eventTime(resp.Events[0]), 10)
	}
	if before == "" {
		// Every event of the newest timestamp is in the page.
		p.Newest = noCursor.advance(resp.Events).String()
	}
	return p, nil
}

// liveCursor is where the live stream continues: after the events of
// timestamp ts, of which it has sent seen (in the order they were stored;
// one stored later comes after them).
type liveCursor struct {
	ts   int64
	seen int
}

var noCursor = liveCursor{ts: -1}

func (c liveCursor) String() string { return fmt.Sprintf("%d:%d", c.ts, c.seen) }

func parseCursor(s string) liveCursor {
	var c liveCursor
	if _, err := fmt.Sscanf(s, "%d:%d", &c.ts, &c.seen); err != nil || c.seen < 0 {
		return noCursor
	}
	return c
}

// advance moves the cursor past events (oldest first, all after it).
func (c liveCursor) advance(events []map[string]any) liveCursor {
	for _, e := range events {
		if ts := eventTime(e); ts == c.ts {
			c.seen++
		} else {
			c = liveCursor{ts: ts, seen: 1}
		}
	}
	return c
}

// logAfter reads the events after a cursor; full says more may wait.
func (u *UI) logAfter(ctx context.Context, s *session, id string, c liveCursor) (fresh []map[string]any, total int, full bool, err error) {
	from := c.ts - 1 // from the cursor's own timestamp on
	resp, err := u.logEvents(ctx, s, id, false, &from, logLiveSize)
	if err != nil {
		return nil, 0, false, err
	}
	fresh = resp.Events
	for skip := c.seen; skip > 0 && len(fresh) > 0 && eventTime(fresh[0]) == c.ts; skip-- {
		fresh = fresh[1:]
	}
	return fresh, resp.Total, len(resp.Events) >= logLiveSize, nil
}

// eachLogBatch calls fn with the whole log, oldest first, a batch at a
// time, until fn returns false.
func (u *UI) eachLogBatch(ctx context.Context, s *session, id string, fn func([]logLine) bool) error {
	var from *int64
	for {
		resp, err := u.logEvents(ctx, s, id, false, from, logScanSize)
		if err != nil {
			return err
		}
		if len(resp.Events) == 0 || !fn(linesOf(resp.Events)) || len(resp.Events) < logScanSize {
			return nil
		}
		last := eventTime(resp.Events[len(resp.Events)-1])
		from = &last
	}
}
