package logstream

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// deliver writes the chunks through a Streamer and returns what arrived.
func deliverWrites(t *testing.T, cfg Config, writes ...string) []event {
	t.Helper()
	f := &fakeSender{}
	ss := start(t, cfg, f)
	for _, w := range writes {
		if n, err := ss.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	ss.finish(t)
	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	return evs
}

func TestWriteLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		writes  []string
		keepCR  bool
		secrets []string
		want    string
	}{
		{name: "plain", writes: []string{"a\nb\n"}, want: "a\nb\n"},
		{name: "partial lines are joined", writes: []string{"hel", "lo\nwor", "ld"}, want: "hello\nworld\n"},
		{name: "empty lines kept", writes: []string{"\n\na\n"}, want: "\n\na\n"},
		{name: "carriage return keeps last segment", writes: []string{"10%\r50%\r100%\ndone\n"}, want: "100%\ndone\n"},
		{name: "CRLF", writes: []string{"text\r\n"}, want: "text\n"},
		{name: "progress across writes", writes: []string{"a 1%\r", "a 2%", "\r", "\n"}, want: "a 2%\n"},
		{name: "carriage return kept as newline", keepCR: true, writes: []string{"a\rb\n"}, want: "a\nb\n"},
		{name: "backspaces removed", writes: []string{"ab\x08c\n"}, want: "abc\n"},
		{name: "terminal reset line dropped", writes: []string{"\x1b[0m\nx\x1b[0m\n"}, want: "x\x1b[0m\n"},
		{name: "invalid UTF-8 replaced", writes: []string{"a\xffb\n"}, want: "a\uFFFDb\n"},
		{name: "character split across writes", writes: []string{"\xc3", "\xa9\n"}, want: "é\n"},
		{name: "secrets masked", secrets: []string{"hunter2", "tok"}, writes: []string{"pass=hunter2 tok\n"}, want: "pass=******** ********\n"},
		{name: "secret split across writes", secrets: []string{"hunter2"}, writes: []string{"pass=hun", "ter2\n"}, want: "pass=********\n"},
		{name: "longer secret first", secrets: []string{"abc", "abcdef"}, writes: []string{"xabcdefx abc\n"}, want: "x********x ********\n"},
		{name: "empty secret ignored", secrets: []string{""}, writes: []string{"ab\n"}, want: "ab\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.FlushInterval = time.Hour // only Close completes a partial line
			cfg.SuppressCarriageReturn = !tt.keepCR
			cfg.Secrets = tt.secrets
			if got := text(deliverWrites(t, cfg, tt.writes...)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLinesConcatenatedIntoOneEvent(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	lines := numbered("line ", 100)
	var writes []string
	for _, l := range lines {
		writes = append(writes, l+"\n")
	}
	evs := deliverWrites(t, cfg, writes...)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	if want := strings.Join(lines, "\n") + "\n"; evs[0].Msg != want || evs[0].Level != "DEBUG" {
		t.Errorf("got %s %q", evs[0].Level, evs[0].Msg)
	}
}

func TestLongLineSplit(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for b.Len() < 200<<10 {
		b.WriteString("a é € 😀 ") // 1-, 2-, 3- and 4-byte characters
	}
	line := b.String()
	const secret = "SECRET-VALUE"
	secretLine := strings.Repeat(strings.Repeat("y", 765)+secret, 400)
	tests := []struct {
		name    string
		writes  []string
		secrets []string
		want    string
	}{
		{name: "one write", writes: []string{line + "\nnext\n"}, want: line + "\nnext\n"},
		{name: "small writes", writes: chunks(line+"\n", 1000), want: line + "\n"},
		{name: "secret across cuts", writes: chunks(secretLine+"\n", 1000), secrets: []string{secret},
			want: strings.ReplaceAll(secretLine, secret, mask) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.FlushInterval = time.Hour
			cfg.Secrets = tt.secrets
			evs := deliverWrites(t, cfg, tt.writes...)
			if len(evs) < 3 {
				t.Errorf("got %d events, want the line split", len(evs))
			}
			for i, e := range evs {
				if len(e.Msg) > DefaultMaxEventBytes || !utf8.ValidString(e.Msg) || strings.Contains(e.Msg, "\uFFFD") {
					t.Fatalf("event %d: %d bytes, valid UTF-8 %v", i, len(e.Msg), utf8.ValidString(e.Msg))
				}
			}
			if got := text(evs); got != tt.want {
				t.Errorf("text differs: got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestLogOrderedWithOutput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	cfg.Secrets = []string{"pw"}
	f := &fakeSender{}
	ss := start(t, cfg, f)
	ss.Write([]byte("out1\npart"))
	ss.Log("INFO", "notice pw\n")
	ss.Write([]byte("more\n"))
	ss.Log("ERROR", "Process failed\n")
	ss.finish(t)
	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	var got []string
	for _, e := range evs {
		got = append(got, e.Level+" "+e.Msg)
	}
	want := []string{"DEBUG out1\npart\n", "INFO notice ********\n", "DEBUG more\n", "ERROR Process failed\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := ss.Write([]byte("late\n")); err != ErrClosed {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

func TestIdlePartialLineFlushed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	f := &fakeSender{}
	ss := start(t, cfg, f)
	ss.Write([]byte("Password: "))
	f.waitFor(t, "a batch", func() bool { return len(f.batches) > 0 })
	if got := text(f.events(t)); got != "Password: \n" {
		t.Errorf("got %q before Close, want the prompt", got)
	}
	ss.finish(t)
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	f := &fakeSender{}
	ss := start(t, cfg, f)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for _, l := range numbered(string(rune('a'+w))+" ", 500) {
				ss.Log("INFO", l)
			}
		})
	}
	wg.Wait()
	ss.finish(t)
	evs := f.events(t)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	next := map[byte]int{}
	for _, e := range evs {
		w := e.Msg[0]
		if want := numbered(string(w)+" ", 500)[next[w]]; e.Msg != want {
			t.Fatalf("got %q, want %q", e.Msg, want)
		}
		next[w]++
	}
	if len(evs) != 2000 {
		t.Errorf("got %d events, want 2000", len(evs))
	}
}

func TestHugeOutputWithoutNewlines(t *testing.T) {
	t.Parallel()
	var redraws []string
	for i := range 20000 {
		redraws = append(redraws, "\rstep "+strings.Repeat("#", i%50))
	}
	big := strings.Repeat("0123456789", 1<<20) // 10 MiB in one write
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "progress bar redrawn", writes: append(redraws, "\n"), want: "step " + strings.Repeat("#", 19999%50) + "\n"},
		{name: "one huge write", writes: []string{big}, want: big + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			cfg.FlushInterval = time.Hour
			evs := deliverWrites(t, cfg, tt.writes...)
			if got := text(evs); got != tt.want {
				t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// BenchmarkHugeWrite: 10 MiB of output without a newline in one write,
// delivered (the speed TestHugeOutputWithoutNewlines used to time).
func BenchmarkHugeWrite(b *testing.B) {
	big := []byte(strings.Repeat("0123456789", 1<<20))
	b.SetBytes(int64(len(big)))
	for range b.N {
		cfg := testConfig(b)
		cfg.FlushInterval = time.Hour
		f := &fakeSender{}
		st, err := New(cfg, f)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- st.Run(context.Background()) }()
		st.Write(big)
		if err := st.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}
