package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// smapsSample is a PIE binary's smaps (/usr/bin/cat's, shortened): a
// read-only mapping written by the loader (its relocations), code, a
// writable mapping, another file, the heap, a shared mapping, a deleted
// file whose path has spaces, the stack.
const smapsSample = `55b2cc358000-55b2cc35a000 r--p 00000000 fe:00 247026                     /usr/bin/cat
Size:                  8 kB
Rss:                   8 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55b2cc35a000-55b2cc35f000 r-xp 00002000 fe:00 247026                     /usr/bin/cat
Size:                 20 kB
Rss:                  20 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
55b2cc361000-55b2cc362000 r--p 00008000 fe:00 247026                     /usr/bin/cat
Size:                  4 kB
Rss:                   4 kB
Anonymous:             4 kB
VmFlags: rd mr mw me ac
55b2cc362000-55b2cc363000 rw-p 00009000 fe:00 247026                     /usr/bin/cat
Size:                  4 kB
Rss:                   4 kB
Anonymous:             4 kB
VmFlags: rd wr mr mw me ac
7f0e1c000000-7f0e1c021000 r-xp 00000000 fe:00 1001                       /usr/lib/libc.so.6
Size:                132 kB
Rss:                 100 kB
Anonymous:             0 kB
55b2cd000000-55b2cd021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                  12 kB
Anonymous:            12 kB
7f0e1c100000-7f0e1c101000 r--s 00000000 fe:00 247026                     /usr/bin/cat
Rss:                   4 kB
Anonymous:             0 kB
7f0e1d000000-7f0e1d001000 r-xp 00000000 fe:02 99                         /opt/my tools/run (deleted)
Rss:                   4 kB
Anonymous:             0 kB
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0                          [stack]
Rss:                   8 kB
Anonymous:             8 kB
`

func TestReadOnlyMappings(t *testing.T) {
	t.Parallel()
	dev := mkdev(0xfe, 0)
	cat := []Mapping{
		{Start: 0x55b2cc358000, End: 0x55b2cc35a000, RssKB: 8},
		{Start: 0x55b2cc35a000, End: 0x55b2cc35f000, RssKB: 20},
		{Start: 0x55b2cc361000, End: 0x55b2cc362000, RssKB: 4, AnonymousKB: 4},
	}
	tests := []struct {
		name   string
		target file
		want   []Mapping
	}{
		{"the binary", file{dev: dev, ino: 247026}, cat},
		{"the binary, by its path (an overlay)", file{dev: 0x2a, ino: 7, path: "/usr/bin/cat"}, cat},
		{"a library", file{dev: dev, ino: 1001}, []Mapping{{Start: 0x7f0e1c000000, End: 0x7f0e1c021000, RssKB: 100}}},
		{"a path with spaces", file{path: "/opt/my tools/run (deleted)"}, []Mapping{{Start: 0x7f0e1d000000, End: 0x7f0e1d001000, RssKB: 4}}},
		{"same inode, other device", file{dev: mkdev(0xfe, 1), ino: 247026}, nil},
		{"not mapped", file{dev: dev, ino: 42, path: "/bin/true"}, nil},
		{"the heap is no file", file{path: "[heap]"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readOnlyMappings(strings.NewReader(smapsSample), tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("mapping %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestMkdevMatchesStat(t *testing.T) {
	t.Parallel()
	tests := []struct{ major, minor, want uint64 }{
		{0xfe, 0, 0xfe00},
		{8, 1, 0x801},
		{259, 3, 0x10303},
		{0x1234, 0x56789, 0x1000_5672_3489}, // glibc's makedev: the high bits above the low 20
	}
	for _, tt := range tests {
		if got := mkdev(tt.major, tt.minor); got != tt.want {
			t.Errorf("mkdev(%#x, %#x) = %#x, want %#x", tt.major, tt.minor, got, tt.want)
		}
	}
}

// rssFileKB reads this process's resident pages of files (the test
// binary's, mostly).
func rssFileKB(t *testing.T) int64 {
	t.Helper()
	n, err := FileResidentKB(os.Getpid())
	if err != nil {
		t.Skipf("needs Linux /proc: %v", err)
	}
	return n
}

// TestBinaryPages trims this test binary's own pages and goes on running
// its code and reading its data (mapped again from the page cache).
func TestBinaryPages(t *testing.T) {
	before := rssFileKB(t)
	res, err := BinaryPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if res.Mappings == 0 || res.ReleasedKB == 0 {
		t.Fatalf("nothing trimmed: %+v", res)
	}
	if after >= before {
		t.Fatalf("resident file pages %d kB before, %d kB after trimming %+v", before, after, res)
	}
	// Code and read-only data work as before.
	if got := strconv.Itoa(12345) + strings.ToUpper("ok"); got != "12345OK" {
		t.Fatalf("got %q", got)
	}
	t.Logf("released %d kB in %d mappings; RssFile %d → %d kB", res.ReleasedKB, res.Mappings, before, after)
}
