//go:build unix

package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// sysProcAttr returns the process attributes for a server binary: run as
// owner (when not nil) and, for the long-running postgres process, die with
// the test binary where the OS supports it.
func sysProcAttr(owner *account, dieWithParent bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if owner != nil {
		attr.Credential = &syscall.Credential{Uid: owner.uid, Gid: owner.gid}
	}
	if dieWithParent {
		setDeathSignal(attr)
	}
	return attr
}

// canTraverse reports whether a can reach path, i.e. has search permission
// on it and on every directory above it (judged by the mode bits; a's
// supplementary groups are not considered as they are dropped).
func (a *account) canTraverse(path string) bool {
	path, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(path)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return true
		}
		mode := fi.Mode().Perm()
		switch {
		case st.Uid == a.uid:
			if mode&0o100 == 0 {
				return false
			}
		case st.Gid == a.gid:
			if mode&0o010 == 0 {
				return false
			}
		default:
			if mode&0o001 == 0 {
				return false
			}
		}
		parent := filepath.Dir(path)
		if parent == path {
			return true
		}
		path = parent
	}
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
