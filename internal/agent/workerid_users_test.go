package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

// otherUID and thirdUID are users that are not the test's (the tests
// create files as root and hand them over, and run processes as them).
const (
	otherUID = 4242
	thirdUID = 4343
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates files owned by another user, and runs a process as another user")
	}
}

// sharedTemp is a folder like /tmp: writable by everyone, sticky, and
// reachable by other users.
func sharedTemp(t *testing.T) string {
	t.Helper()
	dir := publicDir(t)
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publicDir is a new folder in the system temp folder that every user can
// reach, removed after the test.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "clearml-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeAs writes a file owned by uid with mode.
func writeAs(t *testing.T, path, text string, uid int, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// startAs runs a long sleep as uid with the given argv[0] (what
// /proc/PID/cmdline shows), and returns its pid.
func startAs(t *testing.T, uid int, argv0 string) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "600")
	cmd.Args[0] = argv0
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Start returns once the exec is under way; until it has finished,
	// /proc/PID is still root's (the process is not dumpable after its
	// change of user) and its command line may be the parent's.
	pid := cmd.Process.Pid
	testwait.Until(t, 30*time.Second, func() bool {
		owner, ok := processUID(pid)
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return ok && owner == uid && strings.HasPrefix(string(cmdline), argv0+"\x00")
	}, fmt.Sprintf("process %d to run %q as uid %d", pid, argv0, uid))
	return pid
}

// Another user cannot stop this user's daemons from registering: not
// with a lock file only they can open, not with a lock file this user
// cannot clear (root's, for a user daemon; each costs upstream's wait of
// 10 s, then a private lock), not with a fake instance file
// that claims a worker id for a process that is not theirs. A real agent
// of another user still holds its id, and the error names the file and
// its owner. Before, the first two stopped every daemon ("opening
// instance lock: permission denied") and the third made the id "already
// running".
func TestRegisterWithOtherUsersFiles(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	t.Run("another user's private lock file", func(t *testing.T) {
		t.Parallel()
		dir := sharedTemp(t)
		writeAs(t, filepath.Join(dir, lockName), "", otherUID, 0o600)
		out := registerAs(t, thirdUID, dir, "")
		if out.Err != "" || out.WorkerID == "" {
			t.Fatalf("a daemon with another user's private lock file: %+v", out)
		}
		if w := strings.Join(out.Warnings, "\n"); !strings.Contains(w, lockName) || !strings.Contains(w, fmt.Sprint(otherUID)) {
			t.Errorf("no warning naming the lock file and its owner: %q", w)
		}
	})

	t.Run("root's lock file, a daemon of another user", func(t *testing.T) {
		t.Parallel()
		dir := sharedTemp(t)
		writeAs(t, filepath.Join(dir, lockName), "", 0, 0o644)
		out := registerAs(t, otherUID, dir, "")
		if out.Err != "" || out.WorkerID == "" {
			t.Fatalf("a user's daemon with root's lock file: %+v", out)
		}
	})

	t.Run("a fake instance file", func(t *testing.T) {
		t.Parallel()
		dir := sharedTemp(t)
		// It names a live process that is not the other user's (this test).
		writeAs(t, filepath.Join(dir, fmt.Sprintf(".clearmlagent_%d_fake.tmp", os.Getpid())), "victim\n0", otherUID, 0o644)
		in, err := Register(IdentityOptions{WorkerID: "victim", Dir: dir})
		if err != nil {
			t.Fatalf("a fake instance file blocks the worker id: %v", err)
		}
		in.Release()
		// Nor does a process of theirs that is no agent.
		pid := startAs(t, otherUID, "sleep")
		writeAs(t, filepath.Join(dir, fmt.Sprintf(".clearmlagent_%d_fake2.tmp", pid)), "victim\n0", otherUID, 0o644)
		in, err = Register(IdentityOptions{WorkerID: "victim", Dir: dir})
		if err != nil {
			t.Fatalf("an instance file of a process that is no agent blocks the worker id: %v", err)
		}
		in.Release()
	})

	t.Run("a real agent of another user", func(t *testing.T) {
		t.Parallel()
		dir := sharedTemp(t)
		pid := startAs(t, otherUID, "/usr/bin/python3 -m clearml_agent daemon")
		file := filepath.Join(dir, fmt.Sprintf(".clearmlagent_%d_abcd.tmp", pid))
		writeAs(t, file, "shared:0\n0", otherUID, 0o644)
		_, err := Register(IdentityOptions{WorkerID: "shared:0", Dir: dir})
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), fmt.Sprint(otherUID)) {
			t.Fatalf("want an error naming %s and its owner, got %v", file, err)
		}
		// Its slot is taken too: a derived id skips it.
		in, err := Register(IdentityOptions{WorkerName: "shared", Dir: dir})
		if err != nil || in.WorkerID != "shared:1" {
			t.Fatalf("derived id = %v, %v; want shared:1", in, err)
		}
		in.Release()
	})
}

// registered is what the child process of registerAs reports.
type registered struct {
	WorkerID string
	Warnings []string
	Err      string
}

// registerAs runs Register in a copy of this test binary as uid.
func registerAs(t *testing.T, uid int, dir, workerID string) registered {
	t.Helper()
	bin := filepath.Join(publicDir(t), "agent.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		dst.Close()
	}
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A process another test forks while the copy is open for writing
	// holds it open until its own exec: running the copy meanwhile fails
	// with ETXTBSY (golang.org/issue/22315), and is tried again.
	var out []byte
	testwait.Until(t, 30*time.Second, func() bool {
		cmd := exec.Command(bin, "-test.run=^TestRegisterChild$")
		cmd.Env = append(os.Environ(), "REGISTER_CHILD_DIR="+dir, "REGISTER_CHILD_ID="+workerID, "HOME=/nonexistent", "XDG_CACHE_HOME="+filepath.Join(dir, fmt.Sprintf("cache-of-%d", uid)))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		out, err = cmd.Output()
		return !errors.Is(err, syscall.ETXTBSY)
	}, "the copy of the test binary to be free to run")
	var r registered
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "REGISTERED "); ok {
			json.Unmarshal([]byte(rest), &r)
			return r
		}
	}
	t.Fatalf("the child printed no result (%v):\n%s", err, out)
	return r
}

// TestRegisterChild is registerAs's child.
func TestRegisterChild(t *testing.T) {
	dir := os.Getenv("REGISTER_CHILD_DIR")
	if dir == "" {
		t.Skip("run by registerAs only")
	}
	var r registered
	in, err := Register(IdentityOptions{WorkerName: "userhost", WorkerID: os.Getenv("REGISTER_CHILD_ID"), Dir: dir})
	if err != nil {
		r.Err = err.Error()
	} else {
		r.WorkerID, r.Warnings = in.WorkerID, in.Warnings
		in.Release()
	}
	b, _ := json.Marshal(r)
	fmt.Printf("REGISTERED %s\n", b)
}
