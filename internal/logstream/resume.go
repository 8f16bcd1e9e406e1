package logstream

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var timeZero time.Time

// A source mark is a spool line, never sent, saying that every complete
// line of the task's output before source offset N is in the spool
// before the mark. It is written with the event it follows, in one write.
var markPrefix = []byte(`{"_clearml_agent_src":`)

func appendMark(b []byte, src int64) []byte {
	b = append(b, markPrefix...)
	b = strconv.AppendInt(b, src, 10)
	return append(b, '}', '\n')
}

func isMark(line []byte) bool { return bytes.HasPrefix(line, markPrefix) }

func markValue(line []byte) (int64, bool) {
	v, ok := bytes.CutPrefix(bytes.TrimSpace(line), markPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(bytes.TrimSuffix(v, []byte("}"))), 10, 64)
	return n, err == nil
}

func withoutMarks(lines [][]byte) [][]byte {
	out := lines[:0]
	for _, l := range lines {
		if !isMark(l) {
			out = append(out, l)
		}
	}
	return out
}

// Resume says where a task's log continues after a crash.
type Resume struct {
	// SourceOffset is where to read the task's output on: everything
	// before it is in the spool (0 when nothing was).
	SourceOffset int64
	// LastTimestamp is the latest event timestamp spooled for the task;
	// new events must come after it.
	LastTimestamp int64
	// Found is true when a spool of the task was there.
	Found bool
}

// ResumePoint reads the spools the task's earlier Streamers left in
// spoolDir (call it before Recover delivers and removes them).
func ResumePoint(spoolDir, task string) (Resume, error) {
	var r Resume
	pattern := strings.TrimSuffix(streamDirName(task, timeZero), "00010101T000000-*")
	entries, err := os.ReadDir(spoolDir)
	if os.IsNotExist(err) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("logstream: reading spool directory: %w", err)
	}
	for _, e := range entries {
		// "stream-<task>-<time>-<random>": the time starts with a digit,
		// so task "a" does not take the spools of task "a-b".
		rest, ok := strings.CutPrefix(e.Name(), pattern)
		if !e.IsDir() || !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
			continue
		}
		dir := filepath.Join(spoolDir, e.Name())
		seqs, err := listSegments(dir)
		if err != nil {
			return r, fmt.Errorf("logstream: reading spool %s: %w", dir, err)
		}
		r.Found = true
		for _, seq := range seqs {
			data, err := os.ReadFile(segmentPath(dir, seq))
			if err != nil {
				continue
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				if v, ok := markValue(line); ok {
					r.SourceOffset = max(r.SourceOffset, v)
				} else if ts, ok := timestampOf(line); ok {
					r.LastTimestamp = max(r.LastTimestamp, ts)
				}
			}
		}
	}
	return r, nil
}
