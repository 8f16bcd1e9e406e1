package logstream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A spool folder that cannot be created does not cost a line: the events
// go from memory, and Stats says the spool failed.
func TestUnusableSpoolSendsFromMemory(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	blocker := filepath.Join(cfg.SpoolDir, "not-a-dir")
	os.WriteFile(blocker, []byte("x"), 0o600)
	cfg.SpoolDir = filepath.Join(blocker, "spool")
	sender := &fakeSender{}
	ss := start(t, cfg, sender)
	want := numbered("m", 500)
	for _, l := range want {
		ss.Write([]byte(l + "\n"))
	}
	if ss.Stats().SpoolError == "" {
		t.Fatal("Stats does not report the spool failure")
	}
	ss.finish(t)
	if got := text(sender.events(t)); got != strings.Join(want, "\n")+"\n" {
		t.Fatalf("delivered %d bytes, want %d", len(got), len(strings.Join(want, "\n"))+1)
	}
	checkEvents(t, sender.events(t), cfg.TaskID, cfg.Worker)
}

// The spool failing in the middle (disk full) switches to memory after
// what it holds: nothing lost, order kept.
func TestSpoolFailureMidStream(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	sender := &fakeSender{}
	ss := start(t, cfg, sender)
	want := numbered("f", 400)
	for i, l := range want {
		if i == 200 {
			ss.mu.Lock()
			ss.sp.w.Close() // every later write fails
			ss.mu.Unlock()
		}
		ss.Write([]byte(l + "\n"))
	}
	ss.finish(t)
	if got := text(sender.events(t)); got != strings.Join(want, "\n")+"\n" {
		t.Fatalf("lost or reordered lines: got %d bytes", len(got))
	}
	if ss.Stats().SpoolError == "" {
		t.Fatal("Stats does not report the spool failure")
	}
}
