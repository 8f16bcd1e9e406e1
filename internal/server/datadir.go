package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFileName is the file in a data folder that the server serving it
// holds locked (flock) for as long as it runs; it names the holder.
const lockFileName = "server.lock"

// Holder is the server process that holds a data folder.
type Holder struct {
	PID int
	// URL is where it serves the API ("" while it is still starting).
	URL string
}

// BusyError means another server process serves the data folder.
type BusyError struct {
	Dir    string
	Holder Holder
}

func (e *BusyError) Error() string {
	where := "it is still starting"
	if e.Holder.URL != "" {
		where = "it serves " + e.Holder.URL
	}
	return fmt.Sprintf("a server already runs on the data folder %s (pid %d; %s): use that one (clients find it in clearml.conf), stop it first, or give this one another --data-dir",
		e.Dir, e.Holder.PID, where)
}

// dataDirLock is a held data folder.
type dataDirLock struct{ f *os.File }

// lockDataDir takes the data folder for this process, or returns a
// *BusyError naming the process that has it. The lock goes with the
// process, so a killed server never leaves the folder locked.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := DataDirHolder(dir)
			return nil, &BusyError{Dir: dir, Holder: h}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	l := &dataDirLock{f: f}
	if err := l.record(""); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// record writes the holder's pid and URL into the lock file.
func (l *dataDirLock) record(url string) error {
	text := strconv.Itoa(os.Getpid()) + " " + url + "\n"
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	if _, err := l.f.WriteAt([]byte(text), 0); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	return nil
}

func (l *dataDirLock) release() {
	l.f.Truncate(0)
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// DataDirHolder reports the server process serving the data folder, if
// one does (the lock is held); a folder nobody holds gives false.
func DataDirHolder(dir string) (Holder, bool) {
	f, err := os.Open(filepath.Join(dir, lockFileName))
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return Holder{}, false
	}
	buf := make([]byte, 512)
	n, _ := f.ReadAt(buf, 0)
	pidText, url, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
	pid, _ := strconv.Atoi(pidText)
	return Holder{PID: pid, URL: url}, true
}

// databaseFiles are the SQLite database and the files SQLite keeps beside
// it. The database holds the token-signing secret.
var databaseFiles = []string{"clearml.db", "clearml.db-wal", "clearml.db-shm", "clearml.db-journal"}

// privateDataFiles makes the server's files in a data folder readable by
// their owner only: it creates the database 0600 before SQLite opens it
// (SQLite gives its WAL the database's mode) and takes group and other
// access away from files an earlier version created. It warns when the
// folder itself can be read by other users, which the server leaves to
// the operator (the folder may be shared on purpose).
func privateDataFiles(dir string, sqlite bool, warn func(msg string, args ...any)) error {
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		warn(fmt.Sprintf("data folder %s can be read by other users (mode %#o): run chmod 700 on it", dir, st.Mode().Perm()))
	}
	if sqlite {
		f, err := os.OpenFile(filepath.Join(dir, databaseFiles[0]), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("creating the database file: %w", err)
		}
		f.Close()
	}
	for _, name := range append(append([]string{}, databaseFiles...), "clearml.conf", lockFileName) {
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, st.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("making %s private: %w", p, err)
		}
	}
	return nil
}
