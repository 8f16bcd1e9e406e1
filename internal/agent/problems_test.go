package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestProblemsSaidOnce(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &problems{now: func() time.Time { return now }}
	err := errors.New("connection refused")
	for i := 0; i < 100; i++ { // 100 polls, one every 2 s
		p.report(log, "could not access task queue", err, "queue", "default")
		now = now.Add(2 * time.Second)
	}
	p.clear(log, "could not access task queue")
	p.clear(log, "could not access task queue") // nothing more to say
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines for 200 s of failures, want 2:\n%s", len(lines), b.String())
	}
	if !strings.Contains(lines[0], `msg="could not access task queue (retrying quietly)"`) || !strings.Contains(lines[1], "works again") ||
		!strings.Contains(lines[1], "failures=100") {
		t.Errorf("lines:\n%s", b.String())
	}
	b.Reset()
	for i := 0; i < 200; i++ { // 400 s: once at the start, once after 5 minutes
		p.report(log, "could not access task queue", err)
		now = now.Add(2 * time.Second)
	}
	if n := strings.Count(b.String(), "\n"); n != 2 || !strings.Contains(b.String(), "(still)") {
		t.Errorf("%d lines over 400 s, want 2:\n%s", n, b.String())
	}
}
