package logstream

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOffsetFile(t *testing.T) {
	t.Parallel()
	// A record torn by a crash: the start of the new one over the old.
	tornOver := func(old, new []byte, n int) string { return string(new[:n]) + string(old[n:]) }
	type want struct {
		seq, off   int64
		intent     bool
		start, end int64
	}
	cases := []struct {
		name   string
		before string   // the file as an earlier write (or version) left it
		recs   [][]byte // then written in order
		want   want
	}{
		{name: "position", recs: [][]byte{offsetRecord(3, 40)}, want: want{seq: 3, off: 40}},
		{name: "batch in flight", recs: [][]byte{intentRecord(2, 10, 99)}, want: want{seq: 2, off: 10, intent: true, start: 10, end: 99}},
		{name: "position after the batch", recs: [][]byte{intentRecord(2, 10, 99), offsetRecord(2, 99)}, want: want{seq: 2, off: 99}},
		{name: "shorter over longer", recs: [][]byte{intentRecord(123456789, 987654321, 987654399), offsetRecord(1, 0)}, want: want{seq: 1}},
		{name: "largest numbers fit", recs: [][]byte{intentRecord(math.MaxInt64, math.MaxInt64-1, math.MaxInt64)},
			want: want{seq: math.MaxInt64, off: math.MaxInt64 - 1, intent: true, start: math.MaxInt64 - 1, end: math.MaxInt64}},
		{name: "earlier format, position", before: "7 512\n", want: want{seq: 7, off: 512}},
		{name: "earlier format, batch", before: "7 512\ninflight 512 900\n", want: want{seq: 7, off: 512, intent: true, start: 512, end: 900}},
		{name: "earlier format overwritten", before: "7 512\ninflight 512 900\n", recs: [][]byte{offsetRecord(8, 0)}, want: want{seq: 8}},
		{name: "no file", want: want{}},
		{name: "torn: new position's start over a longer one", before: tornOver(offsetRecord(12, 40960), offsetRecord(13, 0), 3), want: want{}},
		{name: "checksum damaged", before: strings.Replace(string(offsetRecord(3, 40)), "crc ", "crc f", 1), want: want{}},
		{name: "checksum alone", before: "crc 00000000\n", want: want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if c.before != "" {
				if err := os.WriteFile(filepath.Join(dir, offsetFile), []byte(c.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			w := &offsetWriter{dir: dir}
			for _, r := range c.recs {
				if len(r) != offsetRecordSize {
					t.Fatalf("record of %d bytes, want %d", len(r), offsetRecordSize)
				}
				if err := w.put(r); err != nil {
					t.Fatal(err)
				}
			}
			w.close()
			seq, off := readOffset(dir)
			start, end, intent := readIntent(dir)
			got := want{seq: seq, off: off, intent: intent, start: start, end: end}
			if got != c.want {
				t.Errorf("read back %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestOffsetFileTorn: whatever prefix of a record a crash leaves over the
// one before, what is read is never past the newer record (positions only
// move forward): Recover may send events twice, never skip one.
func TestOffsetFileTorn(t *testing.T) {
	t.Parallel()
	type pos struct{ seq, off int64 }
	after := func(a, b pos) bool { return a.seq > b.seq || a.seq == b.seq && a.off > b.off }
	cases := []struct {
		name       string
		old, new   []byte
		newPos     pos
		newEnd     int64 // the newer record's batch end, 0: none
		oldEnd     int64
		oldPosBack pos // the older record's position
	}{
		{name: "position to the next segment", old: offsetRecord(12, 40960), new: offsetRecord(13, 0), newPos: pos{13, 0}, oldPosBack: pos{12, 40960}},
		{name: "position to a batch in flight", old: offsetRecord(2, 10), new: intentRecord(2, 99, 180), newPos: pos{2, 99}, newEnd: 180, oldPosBack: pos{2, 10}},
		{name: "batch in flight to its end", old: intentRecord(2, 99, 180), new: offsetRecord(2, 180), newPos: pos{2, 180}, oldEnd: 180, oldPosBack: pos{2, 99}},
		{name: "longer numbers", old: offsetRecord(9, 1), new: intentRecord(9, 123456789, 987654321), newPos: pos{9, 123456789}, newEnd: 987654321, oldPosBack: pos{9, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for n := 0; n <= offsetRecordSize; n++ {
				torn := append(append([]byte{}, c.new[:n]...), c.old[n:]...)
				if err := os.WriteFile(filepath.Join(dir, offsetFile), torn, 0o600); err != nil {
					t.Fatal(err)
				}
				seq, off := readOffset(dir)
				if got := (pos{seq, off}); after(got, c.newPos) {
					t.Errorf("%d bytes written: read position %v, past the newer record's %v", n, got, c.newPos)
				}
				if start, end, ok := readIntent(dir); ok && end > max(c.newEnd, c.oldEnd) {
					t.Errorf("%d bytes written: read batch [%d, %d), past any batch recorded", n, start, end)
				}
				if n == 0 && (pos{seq, off}) != c.oldPosBack {
					t.Errorf("nothing written: read %v, want the older record's %v", pos{seq, off}, c.oldPosBack)
				}
				if n == offsetRecordSize && (pos{seq, off}) != c.newPos {
					t.Errorf("all written: read %v, want %v", pos{seq, off}, c.newPos)
				}
			}
		})
	}
}

// TestOffsetFileInPlace: updates rewrite the one file (no file created per
// update), and a write after close still lands.
func TestOffsetFileInPlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := &offsetWriter{dir: dir}
	if err := w.put(offsetRecord(1, 0)); err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(filepath.Join(dir, offsetFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(50) {
		if err := w.put(intentRecord(1, i*10, i*10+10)); err != nil {
			t.Fatal(err)
		}
		if err := w.put(offsetRecord(1, i*10+10)); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	if err := w.put(offsetRecord(2, 5)); err != nil {
		t.Fatalf("write after close: %v", err)
	}
	last, err := os.Stat(filepath.Join(dir, offsetFile))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(first, last) {
		t.Error("the offset file was replaced by another file, want it rewritten in place")
	}
	if last.Size() != offsetRecordSize {
		t.Errorf("offset file of %d bytes, want %d", last.Size(), offsetRecordSize)
	}
	if seq, off := readOffset(dir); seq != 2 || off != 5 {
		t.Errorf("read back %d %d, want 2 5", seq, off)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("spool folder holds %d entries, want only the offset file", len(entries))
	}
}
