package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The host-wide registration lock and the instance files live in the
// shared temp folder, as upstream's, so that both agents see each other.
// Other users can write there, so nothing found there is trusted blindly:
// a lock file this user cannot open, or that another user holds, is
// worked around with a private lock (and a warning naming the file and
// its owner), and an instance file of another user counts only when its
// process is theirs and is an agent.

// lockWait is how long registration waits for the host-wide lock.
const lockWait = 10 * time.Second

// lockHost takes the host-wide registration lock (flock; released by the
// kernel if this process dies). It returns warnings when it had to use a
// private lock instead.
func lockHost(path string) (unlock func(), warnings []string, err error) {
	f, why := openSharedLock(path)
	if f == nil {
		return lockPrivate(why)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			holders := lockHolders(f)
			f.Close()
			for _, pid := range holders {
				if uid, ok := processUID(pid); ok && uid != os.Geteuid() && uid != 0 {
					return lockPrivate(fmt.Sprintf("the instance lock %s is held by process %d of %s", path, pid, describeUID(uid)))
				}
			}
			return nil, nil, fmt.Errorf("taking instance lock %s (owner %s, held by pids %v): %w", path, fileOwner(path), holders, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openSharedLock opens the lock file for flock: created (0644, so that
// every user can open it to lock) when missing, else opened for writing
// or, when this user may not write it, for reading (flock works on
// either). It returns nil and why when the file cannot be used: another
// user's file this user cannot open, a link, not a plain file.
func openSharedLock(path string) (*os.File, string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|syscall.O_NOFOLLOW, 0o644)
	if err == nil {
		f.Chmod(0o644) // whatever the umask
		return f, ""
	}
	for _, flag := range []int{os.O_RDWR, os.O_RDONLY} {
		if f, err = os.OpenFile(path, flag|syscall.O_NOFOLLOW, 0); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Sprintf("the instance lock %s (owner %s) cannot be opened: %v", path, fileOwner(path), errors.Unwrap(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Sprintf("the instance lock %s (owner %s) is not a plain file", path, fileOwner(path))
	}
	return f, ""
}

// lockPrivate takes this user's own registration lock instead of the
// host-wide one.
func lockPrivate(why string) (func(), []string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("clearml-agent-%d", os.Geteuid()))
	}
	dir := filepath.Join(base, "clearml-agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("%s, and a private lock cannot be made: %w", why, err)
	}
	path := filepath.Join(dir, "instance.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("%s, and the private lock %s cannot be opened: %w", why, path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("taking the private instance lock %s: %w", path, err)
	}
	warn := why + ": registering under the private lock " + path + " instead (daemons of other users are not serialised with this one)"
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, []string{warn}, nil
}

// lockHolders lists the processes holding a flock on f (/proc/locks).
func lockHolders(f *os.File) []int {
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	raw, err := os.ReadFile("/proc/locks")
	if err != nil {
		return nil
	}
	var pids []int
	for _, line := range strings.Split(string(raw), "\n") {
		// "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		parts := strings.Split(fields[5], ":")
		if ino, err := strconv.ParseUint(parts[len(parts)-1], 10, 64); err != nil || ino != sys.Ino {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// fileUID returns the owner of a file (not following links).
func fileUID(path string) (int, bool) {
	st, err := os.Lstat(path)
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return int(sys.Uid), ok
}

// processUID returns the user a process runs as.
func processUID(pid int) (int, bool) {
	return fileUID(fmt.Sprintf("/proc/%d", pid))
}

// fileOwner describes a file's owner for messages.
func fileOwner(path string) string {
	uid, ok := fileUID(path)
	if !ok {
		return "unknown"
	}
	return describeUID(uid)
}

// describeUID is "name (uid N)", or "uid N" for a user without a name.
func describeUID(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// trustedInstance reports whether an instance file of another user
// stands for a live agent of theirs: its process runs as the file's owner
// and is an agent (its command line names clearml). Files of this user
// are trusted as before.
func trustedInstance(path string, pid int) bool {
	fuid, ok := fileUID(path)
	if !ok {
		return false
	}
	if fuid == os.Geteuid() {
		return true
	}
	puid, ok := processUID(pid)
	if !ok || puid != fuid {
		return false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(strings.ToLower(string(cmd)), "clearml")
}
