package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The host-wide registration lock and the instance files live in the
// shared temp folder, as upstream's, so that both agents see each other.
// Other users can write there, so nothing found there is trusted blindly:
// a lock file that is not a plain file, or another user's that cannot be
// cleared, is worked around with a private lock (and a warning naming the
// file and its owner), and an instance file of another user counts only
// when its process is theirs and is an agent.

// lockWait is how long registration waits for the host-wide lock, and
// the age after which a lock file left behind is cleared: upstream's
// timeout.
const lockWait = 10 * time.Second

// lockHost takes the host-wide registration lock with upstream's protocol,
// so that both kinds of agent on one host exclude each other: the lock is
// the file's existence. It is created (exclusively) for the registration
// and removed right after; a file found there is waited for, and one older
// than lockWait (its holder died), or still there after waiting lockWait,
// is cleared, as upstream clears it. It returns warnings when it had to use
// a private lock instead: the file is not a plain file, or it is another
// user's and cannot be cleared.
func lockHost(path string) (unlock func(), warnings []string, err error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
		if err == nil {
			f.Chmod(0o644) // whatever the umask
			fmt.Fprintf(f, "%d\n", os.Getpid())
			st, _ := f.Stat()
			f.Close()
			return func() { removeIfSame(path, st) }, nil, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return lockPrivate(fmt.Sprintf("the instance lock %s cannot be created: %v", path, errors.Unwrap(err)))
		}
		st, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil || !st.Mode().IsRegular() {
			return lockPrivate(fmt.Sprintf("the instance lock %s (owner %s) is not a plain file", path, fileOwner(path)))
		}
		if time.Since(st.ModTime()) > lockWait || time.Now().After(deadline) {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return lockPrivate(fmt.Sprintf("the instance lock %s (owner %s) was left there and cannot be cleared (%v)",
					path, fileOwner(path), errors.Unwrap(err)))
			}
			continue
		}
		if f := lockWaiting.Load(); f != nil {
			(*f)()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockWaiting, when set (by tests), is called each time lockHost finds
// the lock held and waits.
var lockWaiting atomic.Pointer[func()]

// removeIfSame removes the lock file if it is still the one this process
// created (not one another agent made after clearing ours).
func removeIfSame(path string, mine os.FileInfo) {
	if st, err := os.Lstat(path); err == nil && mine != nil && os.SameFile(st, mine) {
		os.Remove(path)
	}
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
