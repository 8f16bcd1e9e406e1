package logstream

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The offset file of a spool holds the delivery position, and, while a
// batch is in flight, the batch:
//
//	<seq> <byte offset>\n
//	inflight <start> <end>\n      (only while a batch is being sent)
//	crc <crc32 of the lines above, hex>\n
//
// It is written in place, one write of offsetRecordSize bytes at the start
// of the file, padded with spaces: a shorter record leaves nothing of a
// longer one. A write that small, inside one page, is not torn by a crash
// of the process in practice; the checksum makes sure that a torn one
// reads as no record (Recover then sends the spool from its start: events
// twice, none lost), never as a position too far. A file without the
// checksum line is an earlier version's, read as it is. An update used to
// be a new file renamed over the old one, twice per batch sent: on a file
// system without a journal every file created scans past the inodes freed
// in the last half minute, and a daemon following fifty chatty tasks spent
// most of its CPU there.
const offsetRecordSize = 128

// offsetRecord is the position alone.
func offsetRecord(seq, off int64) []byte {
	return padRecord(fmt.Appendf(nil, "%d %d\n", seq, off))
}

// intentRecord is the position with the batch [start, end) of segment seq
// in flight; the position is the batch's start.
func intentRecord(seq, start, end int64) []byte {
	return padRecord(fmt.Appendf(nil, "%d %d\ninflight %d %d\n", seq, start, start, end))
}

func padRecord(b []byte) []byte {
	b = fmt.Appendf(b, "%s%08x\n", crcPrefix, crc32.ChecksumIEEE(b))
	out := make([]byte, offsetRecordSize)
	n := copy(out, b) // 4 numbers of at most 20 characters and the checksum: always fits
	for i := n; i < len(out)-1; i++ {
		out[i] = ' '
	}
	out[len(out)-1] = '\n'
	return out
}

// offsetWriter writes a spool's offset file, keeping it open between
// writes. The zero value of a spool without a folder writes nothing.
type offsetWriter struct {
	dir  string
	f    *os.File
	done bool // closed: later writes open and close the file each time
}

func (w *offsetWriter) put(rec []byte) error {
	if w.dir == "" {
		return nil
	}
	f := w.f
	if f == nil {
		var err error
		// Emptied first: what an earlier version wrote (shorter, with no
		// checksum) must not show through a torn first record.
		f, err = os.OpenFile(filepath.Join(w.dir, offsetFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("logstream: writing spool offset: %w", err)
		}
		if w.done {
			defer f.Close()
		} else {
			w.f = f
		}
	}
	if _, err := f.WriteAt(rec, 0); err != nil {
		return fmt.Errorf("logstream: writing spool offset: %w", err)
	}
	return nil
}

func (w *offsetWriter) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.done = true
}

const crcPrefix = "crc "

// readRecord returns the lines of the offset file's record, without the
// checksum line; false when there is no file or its checksum is wrong.
func readRecord(dir string) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, offsetFile))
	if err != nil {
		return nil, false
	}
	body := strings.TrimRight(string(b), " \n")
	i := strings.LastIndex(body, "\n"+crcPrefix)
	if i < 0 {
		if strings.HasPrefix(body, crcPrefix) {
			return nil, false // a checksum of nothing: torn
		}
		return strings.Split(body, "\n"), true // an earlier version's file
	}
	sum, err := strconv.ParseUint(body[i+1+len(crcPrefix):], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(body[:i+1])) {
		return nil, false
	}
	return strings.Split(body[:i], "\n"), true
}

// readIntent returns the batch recorded as in flight at the position, if
// any: [start, end) of the position's segment.
func readIntent(dir string) (start, end int64, ok bool) {
	lines, ok := readRecord(dir)
	if !ok || len(lines) != 2 {
		return 0, 0, false
	}
	f := strings.Fields(lines[1])
	if len(f) != 3 || f[0] != "inflight" {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(f[1], 10, 64)
	end, err2 := strconv.ParseInt(f[2], 10, 64)
	return start, end, err1 == nil && err2 == nil && end > start
}

// readOffset returns the recorded position, or (0, 0) when there is none.
func readOffset(dir string) (seq, off int64) {
	lines, ok := readRecord(dir)
	if !ok {
		return 0, 0
	}
	f := strings.Fields(lines[0])
	if len(f) != 2 {
		return 0, 0
	}
	seq, err1 := strconv.ParseInt(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return 0, 0
	}
	return seq, off
}
