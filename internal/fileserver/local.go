package fileserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// Local keeps files in a folder. All access goes through an os.Root, so a
// key (or a symbolic link planted in the folder) cannot reach outside it.
type Local struct {
	root *os.Root
}

// tempPrefix marks files being uploaded; they are renamed into place.
const tempPrefix = ".upload-"

// OpenLocal opens (creating it) the folder dir.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating files folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening files folder: %w", err)
	}
	return &Local{root: root}, nil
}

// Close releases the folder.
func (l *Local) Close() error { return l.root.Close() }

func (l *Local) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	dir := path.Dir(key)
	if dir != "." {
		if err := l.root.MkdirAll(dir, 0o700); err != nil {
			return 0, localErr("creating folder", err)
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, localErr("creating file", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.root.Remove(tmp)
		return n, fmt.Errorf("writing file: %w", err)
	}
	if fi, err := l.root.Stat(key); err == nil && fi.IsDir() {
		l.root.Remove(tmp)
		return n, fmt.Errorf("storing %s: %w", key, ErrConflict)
	}
	if err := l.root.Rename(tmp, key); err != nil {
		l.root.Remove(tmp)
		return n, localErr("storing file", err)
	}
	return n, nil
}

func (l *Local) Open(ctx context.Context, key string) (*Object, error) {
	f, err := l.root.Open(key)
	if err != nil {
		return nil, localErr("opening file", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotExist
	}
	return &Object{Info: Info{Size: fi.Size(), ModTime: fi.ModTime()}, Body: f}, nil
}

func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	fi, err := l.root.Stat(key)
	if err != nil {
		return Info{}, localErr("reading file", err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, ErrNotExist
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (l *Local) Delete(ctx context.Context, key string) error {
	fi, err := l.root.Lstat(key)
	if err != nil {
		return localErr("deleting file", err)
	}
	if fi.IsDir() {
		return ErrNotExist
	}
	if err := l.root.Remove(key); err != nil {
		return localErr("deleting file", err)
	}
	return nil
}

// localErr maps file system errors on a key to the package's errors: a
// missing file, or a key that runs through a file (ENOTDIR) or names a
// folder, is not a server fault.
func localErr(doing string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotExist
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, fs.ErrExist),
		errors.Is(err, syscall.ENOTEMPTY):
		return fmt.Errorf("%s: %w", doing, ErrConflict)
	case strings.Contains(err.Error(), "path escapes from parent"):
		// A symbolic link in the folder pointing outside it.
		return fmt.Errorf("%s: %w", doing, ErrNotExist)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// ctxReader stops a copy when the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
