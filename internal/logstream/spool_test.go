package logstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
)

func TestSpoolBoundDropsOldest(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxSpoolBytes = 8 << 10
	cfg.MaxEventBytes = 100 // one line per event
	f := &fakeSender{}
	st, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	// The server is unreachable: nothing runs while the output piles up.
	lines := numbered(strings.Repeat("p", 70)+" ", 500)
	writeLines(t, st, lines)
	st.Log("INFO", "Process completed successfully\n")
	s := st.Stats()
	if s.Dropped == 0 || s.Pending == 0 || s.Dropped+s.Pending != 501 {
		t.Fatalf("stats %+v", s)
	}
	if unsent := st.sp.unsentBytes(); unsent > cfg.MaxSpoolBytes {
		t.Errorf("%d unsent bytes spooled, bound %d", unsent, cfg.MaxSpoolBytes)
	}
	runStreamer(t, st, t.Context()).finish(t)

	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	want := fmt.Sprintf("[clearml-agent] %d log lines dropped: spool full\n", s.Dropped)
	if evs[0].Level != "WARNING" || evs[0].Msg != want {
		t.Fatalf("first event %s %q, want the notice %q", evs[0].Level, evs[0].Msg, want)
	}
	kept := lines[s.Dropped:]
	if got := text(evs[1:]); got != strings.Join(kept, "\n")+"\n" {
		t.Errorf("delivered lines are not the newest %d in order", len(kept))
	}
	if last := evs[len(evs)-1]; last.Level != "INFO" {
		t.Errorf("last event %+v", last)
	}
}

func TestCloseTimeoutKeepsSpoolForRecover(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBatchBytes = 1 << 10
	cfg.MaxEventBytes = 200
	// The server takes the first two batches, then goes away.
	first := &fakeSender{respond: func(call int, lines [][]byte) (int, error) {
		if call <= 2 {
			return len(lines), nil
		}
		return 0, &api.Error{Code: 503, Msg: "unavailable"}
	}}
	st, err := New(cfg, first)
	if err != nil {
		t.Fatal(err)
	}
	lines := numbered("kept ", 300)
	writeLines(t, st, lines)
	ss := runStreamer(t, st, t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = ss.Close(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "undelivered") {
		t.Fatalf("Close = %v, want an undelivered error", err)
	}
	ss.waitRun(t, nil)
	if _, err := os.Stat(ss.SpoolPath()); err != nil {
		t.Fatalf("spool not kept: %v", err)
	}
	pending := ss.Stats().Pending
	if pending == 0 || len(first.batches) != 2 {
		t.Fatalf("pending %d after %d batches", pending, len(first.batches))
	}

	second := &fakeSender{}
	sent, err := Recover(t.Context(), cfg.SpoolDir, second, cfg.Logger)
	if err != nil || int64(sent) != pending {
		t.Fatalf("Recover = %d, %v; want %d", sent, err, pending)
	}
	all := append(first.events(t), second.events(t)...)
	checkEvents(t, all, cfg.TaskID, cfg.Worker)
	if got := text(all); got != strings.Join(lines, "\n")+"\n" {
		t.Errorf("lines lost or repeated across Close and Recover")
	}
	if entries, _ := os.ReadDir(cfg.SpoolDir); len(entries) != 0 {
		t.Errorf("spool directory not emptied: %v", entries)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		respond func(call int, lines [][]byte) (int, error)
		torn    string // appended to the last segment, as a crash mid-write would
		want    int
		wantErr bool
		wantDir bool // spool still there afterwards
	}{
		{name: "delivers", want: 3},
		{name: "torn tail skipped", torn: `{"type":"log","msg":"half`, want: 3},
		{name: "refused batch skipped", want: 0,
			respond: func(int, [][]byte) (int, error) { return 0, &api.Error{Code: 400, Subcode: 131} }},
		{name: "outage keeps the spool", wantErr: true, wantDir: true,
			respond: func(int, [][]byte) (int, error) { return 0, errors.New("connection refused") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			st, err := New(cfg, &fakeSender{})
			if err != nil {
				t.Fatal(err)
			}
			st.Log("INFO", "one\n")
			st.Log("INFO", "two\n")
			st.Log("INFO", "three\n")
			if _, err := Recover(t.Context(), cfg.SpoolDir, &fakeSender{}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(st.SpoolPath()); err != nil {
				t.Fatalf("Recover touched a live spool: %v", err)
			}
			// Crash: the process is gone and nobody closes st.
			activeDirs.Delete(absPath(st.SpoolPath()))
			if tt.torn != "" {
				appendFile(t, segmentPath(st.SpoolPath(), 1), tt.torn)
			}
			f := &fakeSender{respond: tt.respond}
			ctx := t.Context()
			if tt.wantErr {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
			}
			sent, err := Recover(ctx, cfg.SpoolDir, f, nil)
			if sent != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("Recover = %d, %v", sent, err)
			}
			if _, err := os.Stat(st.SpoolPath()); (err == nil) != tt.wantDir {
				t.Errorf("spool exists: %v, want %v", err == nil, tt.wantDir)
			}
			if tt.want > 0 {
				if got := msgs(f.events(t)); got != "one\ntwo\nthree\n" {
					t.Errorf("recovered %q", got)
				}
			}
		})
	}
}

func msgs(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Msg)
	}
	return b.String()
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverResumesFromOffset(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBatchBytes = 512
	cfg.MaxEventBytes = 100
	cfg.FlushInterval = time.Nanosecond // record the offset after every batch
	var calls atomic.Int64
	first := &fakeSender{respond: func(_ int, lines [][]byte) (int, error) {
		if calls.Add(1) > 3 {
			return 0, errors.New("connection reset")
		}
		return len(lines), nil
	}}
	st, err := New(cfg, first)
	if err != nil {
		t.Fatal(err)
	}
	lines := numbered("r ", 60)
	writeLines(t, st, lines)
	ctx, cancel := context.WithCancel(t.Context())
	ss := runStreamer(t, st, ctx)
	first.waitFor(t, "six calls", func() bool { return first.calls >= 6 })
	// The daemon dies: Run stops and nobody closes the stream.
	cancel()
	ss.waitRun(t, context.Canceled)
	activeDirs.Delete(absPath(st.SpoolPath()))

	second := &fakeSender{}
	if _, err := Recover(t.Context(), cfg.SpoolDir, second, nil); err != nil {
		t.Fatal(err)
	}
	all := append(first.events(t), second.events(t)...)
	if got := text(all); got != strings.Join(lines, "\n")+"\n" {
		t.Errorf("got %q", got)
	}
	if _, err := os.Stat(filepath.Dir(st.SpoolPath())); err != nil {
		t.Errorf("spool root removed: %v", err)
	}
}
