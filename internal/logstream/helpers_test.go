package logstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSender records the batches it accepts. respond, when set, decides
// each call's answer; by default every event is added. Tests wait on what
// it saw with waitFor.
type fakeSender struct {
	mu      sync.Mutex
	calls   int // AddEvents calls, counted when they start
	failed  int // calls that returned an error
	batches [][][]byte
	respond func(call int, lines [][]byte) (int, error)
	changed chan struct{} // closed (and replaced) when the above change
}

var _ Sender = (*fakeSender)(nil)

func (f *fakeSender) AddEvents(ctx context.Context, lines [][]byte) (int, error) {
	f.mu.Lock()
	f.calls++
	call, respond := f.calls, f.respond
	f.notify()
	f.mu.Unlock()
	added, err := len(lines), error(nil)
	if respond != nil {
		added, err = respond(call, lines)
	}
	if err != nil {
		f.mu.Lock()
		f.failed++
		f.notify()
		f.mu.Unlock()
		return 0, err
	}
	cp := make([][]byte, len(lines))
	for i, l := range lines {
		cp[i] = append([]byte(nil), l...)
	}
	f.mu.Lock()
	f.batches = append(f.batches, cp)
	f.notify()
	f.mu.Unlock()
	return added, nil
}

// notify wakes waitFor. Called with mu held.
func (f *fakeSender) notify() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// waitFor returns once cond, called with mu held, is true; it is checked
// again after every change of the fake's state.
func (f *fakeSender) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(failSafe)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		ok := cond()
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("timed out waiting for the sender to see %s", what)
		}
	}
}

func (f *fakeSender) setRespond(fn func(call int, lines [][]byte) (int, error)) {
	f.mu.Lock()
	f.respond = fn
	f.mu.Unlock()
}

// events decodes every accepted event in order.
func (f *fakeSender) events(t *testing.T) []event {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []event
	for _, b := range f.batches {
		for _, l := range b {
			out = append(out, decodeEvent(t, l))
		}
	}
	return out
}

func decodeEvent(t *testing.T, line []byte) event {
	t.Helper()
	var ev event
	d := json.NewDecoder(strings.NewReader(string(line)))
	d.DisallowUnknownFields()
	if err := d.Decode(&ev); err != nil {
		t.Fatalf("event %q: %v", line, err)
	}
	return ev
}

// testConfig is a fast configuration writing its spool under t.TempDir().
func testConfig(t testing.TB) Config {
	return Config{
		TaskID:                 "task1",
		Worker:                 "host:0",
		SpoolDir:               t.TempDir(),
		FlushInterval:          10 * time.Millisecond,
		SuppressCarriageReturn: true,
		Logger:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBackoff:           func(int) time.Duration { return 2 * time.Millisecond },
	}
}

// started is a Streamer whose Run goroutine the test owns.
type started struct {
	*Streamer
	runErr chan error
}

func start(t *testing.T, cfg Config, s Sender) *started {
	t.Helper()
	st, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return runStreamer(t, st, t.Context())
}

func runStreamer(t *testing.T, st *Streamer, ctx context.Context) *started {
	t.Helper()
	ss := &started{Streamer: st, runErr: make(chan error, 1)}
	go func() { ss.runErr <- st.Run(ctx) }()
	return ss
}

// failSafe bounds a wait that only a bug makes long. It is far above what
// any test needs, even on a loaded machine (delivering megabytes of spool
// in small batches there can take most of a minute).
const failSafe = 5 * time.Minute

// finish closes the stream, requires full delivery and Run's return.
func (ss *started) finish(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failSafe)
	defer cancel()
	if err := ss.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ss.waitRun(t, nil)
}

func (ss *started) waitRun(t *testing.T, want error) {
	t.Helper()
	select {
	case err := <-ss.runErr:
		if err != want {
			t.Fatalf("Run returned %v, want %v", err, want)
		}
	case <-time.After(failSafe):
		t.Fatal("Run did not return")
	}
}

// text joins the messages of output events (level DEBUG).
func text(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Level == DefaultLevel {
			b.WriteString(e.Msg)
		}
	}
	return b.String()
}

// checkEvents checks the fixed fields and strictly increasing timestamps.
func checkEvents(t *testing.T, evs []event, task, worker string) {
	t.Helper()
	for i, e := range evs {
		if e.Type != "log" || e.Task != task || e.Worker != worker {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.Timestamp <= evs[i-1].Timestamp {
			t.Fatalf("event %d: timestamp %d not after %d", i, e.Timestamp, evs[i-1].Timestamp)
		}
	}
}

// numbered returns n distinct lines of varying length.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d %s", prefix, i, strings.Repeat("x", i%7))
	}
	return out
}
