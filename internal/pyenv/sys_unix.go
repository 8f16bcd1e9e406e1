//go:build unix

package pyenv

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// fileLock is a flock(2) on an open file; closing the file releases it, and
// so does the death of the process holding it.
type fileLock struct{ f *os.File }

// tryLock takes a shared or exclusive flock on path without waiting; ok is
// false when someone else holds a conflicting lock. Each call opens the file
// anew, so locks also exclude each other inside one process.
func tryLock(path string, exclusive bool) (l *fileLock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return &fileLock{f: f}, true, nil
}

// unlock releases the lock; it may be called more than once.
func (l *fileLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// freeBytes is the space available to unprivileged users on path's disk.
func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// setProcGroup starts cmd in its own process group and makes cancellation
// kill the whole group (pip runs build backends as children).
func setProcGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
