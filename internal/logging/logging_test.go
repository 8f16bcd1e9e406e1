package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHumanFormat(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	l := New(&b, slog.LevelInfo, Human)
	h := l.Handler().(*humanHandler)
	h.now = func() time.Time { return time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local) }
	l = slog.New(h).With("worker", "host:0")
	l.Debug("hidden")
	l.Info("task done", "task", "abc", "duration", 1500*time.Millisecond, "status", "completed")
	l.WithGroup("server").Warn("could not report", "err", errors.New(`dial tcp: "refused"`), "empty", "")
	l.Error("bad", slog.Group("req", "id", 7))
	want := "INFO  task done worker=host:0 task=abc duration=1.5s status=completed\n" +
		"WARN  could not report worker=host:0 server.err=\"dial tcp: \\\"refused\\\"\" server.empty=\"\"\n" +
		"ERROR bad worker=host:0 req.id=7\n"
	var got []string
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line != "" {
			if len(line) < 9 || line[2] != ':' {
				t.Fatalf("line without a time: %q", line)
			}
			got = append(got, line[9:])
		}
	}
	if strings.Join(got, "") != want {
		t.Errorf("human format:\n%s\nwant:\n%s", strings.Join(got, ""), want)
	}
}

func TestMachineFormats(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	New(&b, slog.LevelInfo, JSON).Info("task done", "task", "abc")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "task done" || rec["task"] != "abc" || rec["level"] != "INFO" {
		t.Errorf("json line %q: %v %v", b.String(), rec, err)
	}
	b.Reset()
	New(&b, slog.LevelInfo, Logfmt).Info("task done", "task", "abc")
	if !strings.Contains(b.String(), `level=INFO msg="task done" task=abc`) {
		t.Errorf("logfmt line %q", b.String())
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": Human, "HUMAN": Human, "json": JSON, "logfmt": Logfmt} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
	if l, err := ParseLevel("warning"); err != nil || l != slog.LevelWarn {
		t.Errorf("ParseLevel(warning) = %v, %v", l, err)
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("loud accepted")
	}
}
