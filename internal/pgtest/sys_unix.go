//go:build unix

package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// Freeze stops the server and its backends (SIGSTOP), as a hung database
// host would be: connections open but nothing answers. thaw resumes them.
func (c *Cluster) Freeze() (thaw func(), err error) {
	if c.cmd == nil {
		return nil, fmt.Errorf("pgtest: no server to freeze")
	}
	pids := append([]int{c.cmd.Process.Pid}, childPIDs(c.cmd.Process.Pid)...)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return nil, fmt.Errorf("pgtest: freezing pid %d: %w", pid, err)
		}
	}
	return func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}, nil
}

// childPIDs lists the processes whose parent is pid (from /proc).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, n)
			}
		}
	}
	return out
}
