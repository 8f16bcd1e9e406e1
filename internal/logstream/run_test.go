package logstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/testwait"
)

func writeLines(t *testing.T, st *Streamer, lines []string) {
	t.Helper()
	for _, l := range lines {
		if _, err := st.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOrderingTenThousandLines(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	f := &fakeSender{}
	ss := start(t, cfg, f)
	lines := numbered("line ", 10000)
	writeLines(t, ss.Streamer, lines)
	ss.finish(t)
	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	if got, want := text(evs), strings.Join(lines, "\n")+"\n"; got != want {
		t.Fatalf("text differs: %d bytes, want %d", len(got), len(want))
	}
	st := ss.Stats()
	if st.Sent != int64(len(evs)) || st.Pending != 0 || st.Dropped != 0 || st.FailedSends != 0 {
		t.Errorf("stats %+v with %d events", st, len(evs))
	}
	if _, err := os.Stat(ss.SpoolPath()); !os.IsNotExist(err) {
		t.Errorf("spool %s not removed after delivery: %v", ss.SpoolPath(), err)
	}
}

func TestBatchCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxBatch int
		maxEvent int
	}{
		{name: "defaults"},
		{name: "small batches", maxBatch: 4 << 10, maxEvent: 1 << 10},
		{name: "event larger than a batch", maxBatch: 1 << 10, maxEvent: 3 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.MaxBatchBytes, cfg.MaxEventBytes = tt.maxBatch, tt.maxEvent
			f := &fakeSender{}
			st, err := New(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			// Spool 5 MiB before Run starts, so that batches are full.
			lines := numbered(strings.Repeat("z", 200)+" ", 25000)
			writeLines(t, st, lines)
			runStreamer(t, st, t.Context()).finish(t)
			limit := cmpOr(tt.maxBatch, DefaultMaxBatchBytes)
			for i, b := range f.batches {
				size := 0
				for _, l := range b {
					size += len(l) + 1
				}
				if size > limit && len(b) > 1 {
					t.Fatalf("batch %d: %d bytes in %d events, limit %d", i, size, len(b), limit)
				}
			}
			if len(f.batches) < 5 {
				t.Errorf("only %d batches", len(f.batches))
			}
			if got, want := text(f.events(t)), strings.Join(lines, "\n")+"\n"; got != want {
				t.Errorf("text differs")
			}
		})
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestOutageLosesNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxBatchBytes = 2 << 10
	var down atomic.Bool
	down.Store(true)
	f := &fakeSender{respond: func(_ int, lines [][]byte) (int, error) {
		if down.Load() {
			return 0, errors.New("connection refused")
		}
		return len(lines), nil
	}}
	ss := start(t, cfg, f)
	lines := numbered("out ", 3000)
	for i, l := range lines {
		if i == 2000 {
			// The outage lasts until a send was refused.
			f.waitFor(t, "a refused send", func() bool { return f.failed > 0 })
			down.Store(false)
		}
		ss.Write([]byte(l + "\n"))
	}
	ss.finish(t)
	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	if got, want := text(evs), strings.Join(lines, "\n")+"\n"; got != want {
		t.Fatalf("text differs after the outage")
	}
	if st := ss.Stats(); st.Retries == 0 || st.Dropped != 0 || st.FailedSends != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// err is the first call's failure; later calls succeed.
		err          error
		added        int // first call's added count when err is nil
		wantFailed   int64
		wantRejected int64
		wantLost     int // leading lines missing from the result
	}{
		{name: "400 skipped", err: &api.Error{Code: 400, Subcode: 131, Msg: "Events not added"}, wantFailed: 1, wantRejected: 1, wantLost: 1},
		{name: "403 wrapped skipped", err: fmt.Errorf("sending: %w", &api.Error{Code: 403}), wantFailed: 1, wantRejected: 1, wantLost: 1},
		{name: "401 retried", err: &api.Error{Code: 401, Subcode: 30}},
		{name: "429 retried", err: &api.Error{Code: 429}},
		{name: "500 retried", err: &api.Error{Code: 500}},
		{name: "partial accept moves on", added: 0, wantRejected: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			f := &fakeSender{respond: func(call int, lines [][]byte) (int, error) {
				if call == 1 {
					return tt.added, tt.err
				}
				return len(lines), nil
			}}
			st, err := New(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			st.Log("INFO", "first\n")
			ss := runStreamer(t, st, t.Context())
			// "first" is done with (delivered or refused) before "second".
			testwait.Until(t, failSafe, func() bool { return ss.Stats().Pending == 0 }, "the first batch's outcome")
			ss.Log("INFO", "second\n")
			ss.finish(t)
			var got []string
			for _, e := range f.events(t) {
				got = append(got, e.Msg)
			}
			want := []string{"first\n", "second\n"}[tt.wantLost:]
			if tt.err == nil { // the fake records the batch the server half took
				want = []string{"first\n", "second\n"}
			}
			if strings.Join(got, "") != strings.Join(want, "") {
				t.Errorf("delivered %q, want %q", got, want)
			}
			if s := ss.Stats(); s.FailedSends != tt.wantFailed || s.Rejected != tt.wantRejected || s.Pending != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fail bool
	}{{name: "idle"}, {name: "retrying", fail: true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			f := &fakeSender{respond: func(_ int, lines [][]byte) (int, error) {
				if tt.fail {
					return 0, errors.New("down")
				}
				return len(lines), nil
			}}
			st, err := New(cfg, f)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			ss := runStreamer(t, st, ctx)
			ss.Log("INFO", "x\n")
			if tt.fail {
				f.waitFor(t, "a retry", func() bool { return f.failed >= 2 })
			} else {
				f.waitFor(t, "the event", func() bool { return len(f.batches) == 1 })
			}
			cancel()
			ss.waitRun(t, context.Canceled)
			if !tt.fail {
				return
			}
			// A later Run picks up where the cancelled one stopped.
			f.setRespond(nil)
			ss = runStreamer(t, st, t.Context())
			ss.finish(t)
			if got := f.events(t); len(got) != 1 || got[0].Msg != "x\n" {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestSecondRunRefused(t *testing.T) {
	t.Parallel()
	ss := start(t, testConfig(t), &fakeSender{})
	testwait.Until(t, failSafe, func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.running
	}, "Run to start")
	if err := ss.Run(t.Context()); err == nil {
		t.Error("second Run started")
	}
	ss.finish(t)
}
