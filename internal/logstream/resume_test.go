package logstream

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkingSender is a fakeSender that can tell whether it holds an event.
type checkingSender struct{ fakeSender }

func (c *checkingSender) Delivered(ctx context.Context, line []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.batches {
		for _, l := range b {
			if bytes.Equal(l, line) {
				return true, nil
			}
		}
	}
	return false, nil
}

// A daemon dies while a task writes (its Streamer is abandoned without
// Close, with lines spooled, some delivered, a partial line in memory);
// the next one reads the resume point, recovers the old spool and follows
// the output file from there: every line arrives exactly once, in order.
func TestResumeAfterCrashExactlyOnce(t *testing.T) {
	t.Parallel()
	lines := numbered("line ", 3000)
	output := []byte(strings.Join(lines, "\n") + "\n")
	cfg := testConfig(t)
	cfg.TrackSource = true
	cfg.MaxEventBytes = 512
	// No idle flush: the partial line at the crash stays in memory (an
	// idle flush would send it as a line of its own, and the resumed
	// stream would carry its rest as another).
	cfg.FlushInterval = time.Hour
	// Small batches: several are delivered before the crash.
	cfg.MaxBatchBytes = 2 << 10
	sender := &checkingSender{}
	// The first sender stops answering part-way, as a dying daemon does:
	// five batches are delivered, the sixth is in flight at the crash.
	blocked := make(chan struct{})
	sender.setRespond(func(call int, l [][]byte) (int, error) {
		if call > 5 {
			<-blocked
			return 0, errors.New("daemon gone")
		}
		return len(l), nil
	})
	st, err := New(cfg, sender)
	if err != nil {
		t.Fatal(err)
	}
	ctx, crash := context.WithCancel(context.Background())
	ss := runStreamer(t, st, ctx)
	cut := len(output) * 2 / 3
	cut += 7 // mid-line: a partial line is lost with the daemon
	for off := 0; off < cut; off += 1000 {
		st.Write(output[off:min(off+1000, cut)])
	}
	sender.waitFor(t, "the sixth batch", func() bool { return sender.calls >= 6 })
	crash()
	close(blocked)
	ss.waitRun(t, context.Canceled)
	// (The abandoned Streamer is never closed: its process is gone.)
	activeDirs.Delete(absPath(st.sp.dir))

	r, err := ResumePoint(cfg.SpoolDir, cfg.TaskID)
	if err != nil || !r.Found || r.SourceOffset <= 0 || r.SourceOffset > int64(cut) {
		t.Fatalf("resume point %+v %v (cut at %d)", r, err, cut)
	}
	if output[r.SourceOffset-1] != '\n' {
		t.Fatalf("resume point %d is not at a line start", r.SourceOffset)
	}
	sender.setRespond(nil)
	if _, err := Recover(context.Background(), cfg.SpoolDir, sender, nil); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.FlushInterval = 10 * time.Millisecond
	cfg2.SourceOffset, cfg2.MinTimestamp = r.SourceOffset, r.LastTimestamp
	next := start(t, cfg2, sender)
	next.Write(output[r.SourceOffset:])
	next.finish(t)

	evs := sender.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	if got := text(evs); got != string(output) {
		gotLines := strings.Split(got, "\n")
		t.Fatalf("delivered %d lines, want %d (first difference near %q)", len(gotLines)-1, len(lines), firstDiff(gotLines, lines))
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return got[i]
		}
	}
	return ""
}

// lossySender records a batch (or not) and then never answers: the
// daemon dies waiting. inFlight is closed when the first such batch came.
type lossySender struct {
	checkingSender
	arrive   bool
	cut      bool
	inFlight chan struct{}
	once     sync.Once
}

func (l *lossySender) AddEvents(ctx context.Context, lines [][]byte) (int, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if !cut {
		return l.checkingSender.AddEvents(ctx, lines)
	}
	if l.arrive {
		l.checkingSender.AddEvents(ctx, lines)
	}
	l.once.Do(func() { close(l.inFlight) })
	<-ctx.Done()
	return 0, ctx.Err()
}

// A batch in flight when the daemon died is not sent again when the
// server has it, and is sent when it has not.
func TestRecoverChecksTheBatchInFlight(t *testing.T) {
	t.Parallel()
	for _, arrived := range []bool{true, false} {
		cfg := testConfig(t)
		sender := &lossySender{arrive: arrived, cut: true, inFlight: make(chan struct{})}
		st, err := New(cfg, sender)
		if err != nil {
			t.Fatal(err)
		}
		// All the lines are written before Run starts, so that its first
		// flush puts them all into the one batch it sends.
		for _, l := range numbered("x", 50) {
			st.Write([]byte(l + "\n"))
		}
		ctx, crash := context.WithCancel(context.Background())
		ss := runStreamer(t, st, ctx)
		select {
		case <-sender.inFlight:
		case <-time.After(failSafe):
			t.Fatal("no batch was sent")
		}
		crash()
		ss.waitRun(t, context.Canceled)
		activeDirs.Delete(absPath(st.sp.dir))
		sender.mu.Lock()
		sender.cut = false
		sender.mu.Unlock()
		if _, err := Recover(context.Background(), cfg.SpoolDir, sender, nil); err != nil {
			t.Fatal(err)
		}
		got := text(sender.events(t))
		if want := strings.Join(numbered("x", 50), "\n") + "\n"; got != want {
			t.Errorf("arrived=%v: delivered %q", arrived, got)
		}
	}
}

// A Streamer that resumes a task's log marks where it resumes in its
// spool at once: a crash before its first line (the earlier spools
// delivered and gone) must not make the next start read the output from
// the beginning again.
func TestResumedSpoolMarksItsStart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.TrackSource = true
	cfg.SourceOffset = 12345
	st, err := New(cfg, &fakeSender{})
	if err != nil {
		t.Fatal(err)
	}
	_ = st // abandoned, as by a daemon killed now
	r, err := ResumePoint(cfg.SpoolDir, cfg.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Found || r.SourceOffset != 12345 {
		t.Fatalf("resume point of a fresh resumed spool = %+v, want offset 12345", r)
	}
}
