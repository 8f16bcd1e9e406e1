package taskprep

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Dir is the folder a task is prepared in (its code, its working
// folder); the daemon removes it when the task ends. It is in the user's own cache folder, not in the
// shared temp folder, where another local user could make it first.
func Dir(taskID string) string {
	return filepath.Join(taskRoot(), taskID)
}

// taskRoot holds the task folders: ~/.cache/clearml-agent/tasks (or
// $XDG_CACHE_HOME/...), or a folder of this user's in the temp folder
// when there is no home.
func taskRoot() string {
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		return filepath.Join(os.TempDir(), fmt.Sprintf("clearml-agent-%d", os.Geteuid()), "tasks")
	}
	return filepath.Join(base, "clearml-agent", "tasks")
}

// makeTaskDir creates a task's folder, fresh (whatever was there is
// removed), 0700, in a parent that must be this user's and private.
func makeTaskDir(taskID string) (string, error) {
	root := taskRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("creating task folder: %w", err)
	}
	for _, p := range []string{filepath.Dir(root), root} {
		if err := ownPrivateDir(p); err != nil {
			return "", err
		}
	}
	dir := Dir(taskID)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("removing the task's old folder: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating task folder: %w", err)
	}
	return dir, nil
}

// ownPrivateDir checks that p is a folder (not a link) of this user, and
// takes group and other access away from it.
func ownPrivateDir(p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("checking task folder: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("the task folders' parent %s is not a folder (%v): remove it", p, st.Mode().Type())
	case ok && int(sys.Uid) != os.Geteuid():
		return fmt.Errorf("the task folders' parent %s belongs to %s, not to this user (uid %d): remove it", p, describeUser(int(sys.Uid)), os.Geteuid())
	case st.Mode().Perm()&0o077 != 0:
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("making %s private: %w", p, err)
		}
	}
	return nil
}

// describeUser is "name (uid N)", or "uid N" for a user without a name.
func describeUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
