// Package memtrim gives back the resident pages a long-lived process of
// this binary holds only because of its start.
//
// Starting the binary runs the initialisation of every package linked in
// (the Kubernetes client's, the metrics library's, the SQLite driver's),
// and each page of code or read-only data it touches is mapped into the
// process together with its neighbours (the kernel's fault-around). A
// daemon, a server or a task's supervisor then keeps those pages resident
// for days without using them again. BinaryPages unmaps the binary's
// read-only pages from the process: the next use of one maps it again
// from the page cache, where the pages stay (shared with the other
// processes of the binary, and reclaimable under memory pressure like any
// unmapped file page). Writable mappings, and read-only ones with
// privately written pages (relocations of a position-independent build),
// are left alone: unmapping those would lose what was written.
package memtrim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mapping is one read-only mapping of the binary.
type Mapping struct {
	Start, End uint64
	// Rss and Anonymous are the mapping's resident and privately written
	// kilobytes when it was read.
	RssKB, AnonymousKB int64
}

// Result says what BinaryPages did.
type Result struct {
	// Mappings is how many read-only mappings of the binary were trimmed.
	Mappings int
	// ReleasedKB is how many resident kilobytes they held before.
	ReleasedKB int64
}

// BinaryPages unmaps the resident pages of this process's read-only
// mappings of its own executable (see the package comment).
func BinaryPages() (Result, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return Result{}, fmt.Errorf("trimming the binary's pages: %w", err)
	}
	// int32 and uint64 on some systems
	exe := file{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	exe.path, _ = os.Readlink("/proc/self/exe")
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("trimming the binary's pages: %w", err)
	}
	maps, err := readOnlyMappings(f, exe)
	f.Close()
	if err != nil {
		return Result{}, fmt.Errorf("trimming the binary's pages: reading /proc/self/smaps: %w", err)
	}
	var res Result
	var errs []error
	for _, m := range maps {
		if m.AnonymousKB != 0 || m.RssKB == 0 {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), syscall.MADV_DONTNEED); e != 0 {
			errs = append(errs, fmt.Errorf("madvise %#x-%#x: %w", m.Start, m.End, e))
			continue
		}
		res.Mappings++
		res.ReleasedKB += m.RssKB
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("trimming the binary's pages: %w", err)
	}
	return res, nil
}

// file names a mapped file: by device and inode, or by its path as the
// process sees it (for a file on an overlay file system, as in a
// container, some kernels list the device and inode of the file
// underneath in smaps, not those stat gives).
type file struct {
	dev, ino uint64
	path     string
}

func (f file) is(o file) bool {
	return (f.dev == o.dev && f.ino == o.ino) || (f.path != "" && f.path == o.path)
}

// readOnlyMappings returns the private, non-writable mappings of file
// target listed in an smaps file.
func readOnlyMappings(r io.Reader, target file) ([]Mapping, error) {
	var out []Mapping
	var cur *Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Bytes()
		if m, perms, mapped, ok := parseHeader(line); ok {
			cur = nil
			if mapped.is(target) && len(perms) == 4 && perms[1] != 'w' && perms[3] == 'p' {
				out = append(out, m)
				cur = &out[len(out)-1]
			}
			continue
		}
		if cur == nil {
			continue
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "Rss":
			cur.RssKB = kilobytes(val)
		case "Anonymous":
			cur.AnonymousKB = kilobytes(val)
		}
	}
	return out, sc.Err()
}

// parseHeader reads a mapping's first line in smaps:
// "start-end perms offset major:minor inode [path]".
func parseHeader(line []byte) (m Mapping, perms string, mapped file, ok bool) {
	rest := string(line)
	var f [5]string
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		f[i], rest, _ = strings.Cut(rest, " ")
	}
	lo, hi, found := strings.Cut(f[0], "-")
	maj, min, found2 := strings.Cut(f[3], ":")
	if !found || !found2 {
		return m, "", file{}, false
	}
	var err1, err2, err3, err4, err5 error
	m.Start, err1 = strconv.ParseUint(lo, 16, 64)
	m.End, err2 = strconv.ParseUint(hi, 16, 64)
	major, err3 := strconv.ParseUint(maj, 16, 32)
	minor, err4 := strconv.ParseUint(min, 16, 32)
	mapped.ino, err5 = strconv.ParseUint(f[4], 10, 64)
	if errors.Join(err1, err2, err3, err4, err5) != nil || m.End <= m.Start {
		return m, "", file{}, false
	}
	mapped.dev = mkdev(major, minor)
	if mapped.ino != 0 {
		mapped.path = strings.TrimLeft(rest, " ")
	}
	return m, f[1], mapped, true
}

// mkdev packs a device number as the kernel's stat does (glibc's
// makedev).
func mkdev(major, minor uint64) uint64 {
	return (major&0xfff)<<8 | (major&^0xfff)<<32 | minor&0xff | (minor&^0xff)<<12
}

func kilobytes(val []byte) int64 {
	f := strings.Fields(string(val))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}

// FileResidentKB reads the resident pages of files that process pid maps
// (RssFile in /proc/PID/status: for this binary, mostly its own pages), in
// kilobytes.
func FileResidentKB(pid int) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading resident pages: %w", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("reading resident pages: no RssFile in %s", path)
}

// Settle is how long after its start a long-lived process of the binary
// (or, for a task's supervisor, after its task's start) gives back the
// pages its start touched: past the start, not on its way.
const Settle = 10 * time.Second

// After waits Settle, then trims the binary's pages (BinaryPages) and
// logs what it gave back at debug level; it returns at once when ctx ends
// first. Long-lived commands run it from their start.
func After(ctx context.Context, log *slog.Logger) {
	t := time.NewTimer(Settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	res, err := BinaryPages()
	if err != nil {
		log.Debug("giving back the start-up pages", "err", err)
		return
	}
	log.Debug("gave back the start-up pages", "kib", res.ReleasedKB, "mappings", res.Mappings)
}
