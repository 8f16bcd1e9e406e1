package logstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The spool of one Streamer is a directory (streamPrefix + task id + time +
// random suffix) holding:
//
//   - segment files "<seq>.jsonl" (seq zero-padded, increasing): append-only
//     JSON lines, one event per line, written whole with one write call;
//   - "offset": "<seq> <byte offset>\n", at or before the first
//     unacknowledged byte, overwritten in place (offset.go) at most once
//     per FlushInterval while delivering, and when Close gives up. A
//     stale offset only means that Recover sends some events twice; a
//     segment that is gone was delivered (or dropped).
//
// The last segment is the one being written. A new one is started when it
// would grow past segSize, and when the reader has acknowledged all of it
// and it holds at least rollDrained bytes (so a drained spool takes little
// space). A fully acknowledged segment is
// deleted. When the unsent bytes exceed the bound, whole oldest segments
// are deleted: that is how "drop the oldest" stays O(1) and never rewrites
// a file. Segments older than the offset's are leftovers of a crash between
// the rename and the delete, and Recover deletes them. No fsync is done:
// the spool protects against outages and daemon crashes, not power loss.
const (
	streamPrefix = "stream-"
	offsetFile   = "offset"
	segmentExt   = ".jsonl"
)

type segment struct {
	seq    int64
	size   int64 // bytes written
	events int64
	lines  int64
}

// batch is a run of events read from the head segment, plus maybe a notice.
type batch struct {
	seq        int64 // segment the events came from
	start, end int64 // their byte range in it
	events     int64 // events from the spool
	lines      int64 // their log lines
	notice     int64 // dropped lines reported by the notice in lines[0], 0 if none
	orphan     bool  // the segment was dropped while the batch was in flight
	mem        bool  // the events come from the memory queue, not the spool
	data       [][]byte
}

// spool is guarded by the Streamer's mutex; only the reading of segment
// contents happens outside it (see Streamer.next).
type spool struct {
	dir     string
	max     int64 // bound on unsent bytes
	segSize int64
	segs    []*segment // oldest first; the last one is written
	w       *os.File   // the last segment, opened for appending
	bytes   int64      // sum of segment sizes
	events  int64      // sum of segment events
	// Acknowledged prefix of segs[0].
	ackOff, ackEvents, ackLines int64
	inflight                    *batch
}

func newSpool(dir string, limit int64) (*spool, error) {
	sp := &spool{dir: dir, max: limit, segSize: max(limit/8, 1)}
	if err := sp.startSegment(1); err != nil {
		return nil, err
	}
	return sp, nil
}

// memorySpool is a spool without files, for a Streamer whose spool folder
// cannot be created: every write fails, so events go to the memory queue.
func memorySpool(limit int64) *spool {
	return &spool{max: limit, segSize: max(limit/8, 1), segs: []*segment{{seq: 1}}}
}

var errNoSpool = errors.New("logstream: no spool folder")

func segmentPath(dir string, seq int64) string {
	return filepath.Join(dir, fmt.Sprintf("%012d%s", seq, segmentExt))
}

func (sp *spool) startSegment(seq int64) error {
	f, err := os.OpenFile(segmentPath(sp.dir, seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("logstream: starting spool segment: %w", err)
	}
	if sp.w != nil {
		sp.w.Close()
	}
	sp.w = f
	sp.segs = append(sp.segs, &segment{seq: seq})
	return nil
}

func (sp *spool) head() *segment   { return sp.segs[0] }
func (sp *spool) active() *segment { return sp.segs[len(sp.segs)-1] }

func (sp *spool) pendingEvents() int64 { return sp.events - sp.ackEvents }
func (sp *spool) unsentBytes() int64   { return sp.bytes - sp.ackOff }

// needRoll reports whether an n-byte line should start a new segment.
func (sp *spool) needRoll(n int) bool {
	a := sp.active()
	return a.size > 0 && a.size+int64(n) > sp.segSize
}

// roll starts the next segment. The caller reserves a timestamp (see
// Streamer.roll).
func (sp *spool) roll() error {
	if sp.dir == "" {
		return errNoSpool
	}
	return sp.startSegment(sp.active().seq + 1)
}

// write appends one encoded event. A failed write is cut back off so that
// the segment holds whole lines only.
func (sp *spool) write(line []byte) error {
	if sp.w == nil {
		return errNoSpool
	}
	a := sp.active()
	if _, err := sp.w.Write(line); err != nil {
		sp.w.Truncate(a.size)
		return fmt.Errorf("logstream: writing spool: %w", err)
	}
	events, lines := countEvents(line)
	a.size += int64(len(line))
	a.events += events
	a.lines += lines
	sp.bytes += int64(len(line))
	sp.events += events
	return nil
}

// countEvents counts the events (source marks excluded) and log lines in
// spool data of whole lines.
func countEvents(data []byte) (events, lines int64) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		if l := data[:i]; len(l) > 0 && !isMark(l) {
			events++
			lines += linesIn(l)
		}
		data = data[min(i+1, len(data)):]
	}
	return events, lines
}

// trim drops the oldest segments while the unsent bytes exceed the bound,
// and returns how many unsent events and lines went with them. Events of
// a batch in flight are not counted: they may yet be delivered.
func (sp *spool) trim() (events, lines int64) {
	for sp.unsentBytes() > sp.max && len(sp.segs) > 1 {
		h := sp.head()
		de, dl := h.events-sp.ackEvents, h.lines-sp.ackLines
		if b := sp.inflight; b != nil && !b.orphan && b.seq == h.seq {
			de, dl = de-b.events, dl-b.lines
			b.orphan = true
		}
		events, lines = events+de, lines+dl
		sp.dropHead()
	}
	return events, lines
}

func (sp *spool) dropHead() {
	h := sp.head()
	os.Remove(segmentPath(sp.dir, h.seq))
	sp.bytes -= h.size
	sp.events -= h.events
	sp.segs = sp.segs[1:]
	sp.ackOff, sp.ackEvents, sp.ackLines = 0, 0, 0
}

// rollDrained is the size from which a fully delivered last segment is
// replaced by a new one; smaller ones are appended to, which saves creating
// a file per batch when the server keeps up.
const rollDrained = 1 << 20

// ack records b as delivered (or given up on) and frees what it can. It
// reports whether a new segment was started. The offset file is written
// separately (Streamer.saveOffset), outside the lock.
func (sp *spool) ack(b *batch) (rolled bool, err error) {
	if b.orphan || b.end == b.start {
		return false, nil
	}
	h := sp.head()
	if h.seq != b.seq || sp.ackOff != b.start {
		return false, nil
	}
	sp.ackOff, sp.ackEvents, sp.ackLines = b.end, sp.ackEvents+b.events, sp.ackLines+b.lines
	if sp.ackOff < h.size {
		return false, nil
	}
	if len(sp.segs) == 1 {
		if h.size < min(rollDrained, sp.segSize) {
			return false, nil
		}
		if err := sp.roll(); err != nil {
			return false, err
		}
		rolled = true
	}
	sp.dropHead()
	return rolled, nil
}

// position is the first unacknowledged byte.
func (sp *spool) position() (seq, off int64) {
	return sp.head().seq, sp.ackOff
}

// listSegments returns the segment numbers in dir, in order.
func listSegments(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []int64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || e.IsDir() {
			continue
		}
		if n, err := strconv.ParseInt(name, 10, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func (sp *spool) close() {
	if sp.w != nil {
		sp.w.Close()
		sp.w = nil
	}
}

// errTorn marks bytes at the end of a segment that are not a whole line
// (a crash during a write); they are skipped.
var errTorn = errors.New("logstream: torn event at the end of a spool segment")

// readLines reads whole events from f starting at off, with avail bytes
// available, up to maxBatch bytes counting one newline per event (one
// event larger than that is returned alone). It returns the events without
// their newlines and how many bytes they took.
func readLines(f io.ReaderAt, off, avail int64, maxBatch int) (lines [][]byte, consumed int64, err error) {
	n := min(avail, int64(max(maxBatch, 1)))
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	end := bytes.LastIndexByte(buf, '\n')
	for end < 0 && n < avail {
		// One event larger than a batch: read on to its end.
		more := make([]byte, min(avail-n, int64(max(maxBatch, 64<<10))))
		if _, err := f.ReadAt(more, off+n); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		if i := bytes.IndexByte(more, '\n'); i >= 0 {
			end = len(buf) + i
		}
		buf, n = append(buf, more...), n+int64(len(more))
	}
	if end < 0 {
		return nil, avail, errTorn
	}
	buf = buf[:end+1]
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i > 0 {
			lines = append(lines, buf[:i:i])
		}
		buf = buf[i+1:]
	}
	return lines, int64(end + 1), nil
}

// streamDirName is the MkdirTemp pattern of a Streamer's spool directory.
func streamDirName(task string, now time.Time) string {
	var b strings.Builder
	for _, r := range task {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return streamPrefix + b.String() + "-" + now.UTC().Format("20060102T150405") + "-*"
}
