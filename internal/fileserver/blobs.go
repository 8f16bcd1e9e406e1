// Package fileserver is a file server compatible with ClearML's: clients
// upload with a multipart POST (each file field's name is the file's path),
// download with GET and remove with DELETE. It is what the SDK's
// files_server URL points at, for artifacts, models, debug images and
// media. Files are kept by a Blobs back end: a local folder (Local) or an
// S3-compatible bucket (S3), which several server replicas can share.
package fileserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Blobs stores files by key (a clean relative path, see CleanKey).
type Blobs interface {
	// Put stores r's content under key, replacing any file there, and
	// returns the number of bytes stored. A reader is never half-stored:
	// readers see the old content or the new.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open returns the file. Its Body is an io.ReadSeeker where the back
	// end can seek (ranges are then served).
	Open(ctx context.Context, key string) (*Object, error)
	// Stat returns the file's size and modification time.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the file; ErrNotExist when there is none.
	Delete(ctx context.Context, key string) error
}

// Info describes a stored file.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Object is an open stored file.
type Object struct {
	Info
	Body io.ReadCloser
}

var (
	// ErrNotExist: no file under that key.
	ErrNotExist = errors.New("file not found")
	// ErrConflict: the key names a folder, or runs through a file.
	ErrConflict = errors.New("path conflicts with an existing file or folder")
)

// Limits of a key, like common file systems' and S3's.
const (
	maxKeyBytes     = 1024
	maxSegmentBytes = 255
)

// CleanKey turns a request path into a key: without leading or doubled
// slashes. It refuses what could leave the storage root or that file
// systems treat specially: "." and ".." segments, backslashes, NUL and
// other control characters.
func CleanKey(p string) (string, error) {
	var parts []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			continue
		case ".", "..":
			return "", fmt.Errorf("path %q: %q segments are not allowed", p, seg)
		}
		if len(seg) > maxSegmentBytes {
			return "", fmt.Errorf("path %q: a segment is longer than %d bytes", p, maxSegmentBytes)
		}
		if strings.ContainsAny(seg, "\\") || strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("path %q: backslashes and control characters are not allowed", p)
		}
		if !utf8.ValidString(seg) {
			// The JSON answers would name another file (U+FFFD instead).
			return "", fmt.Errorf("path %q is not UTF-8", p)
		}
		parts = append(parts, seg)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("path %q names no file", p)
	}
	key := strings.Join(parts, "/")
	if len(key) > maxKeyBytes {
		return "", fmt.Errorf("path is longer than %d bytes", maxKeyBytes)
	}
	return key, nil
}
