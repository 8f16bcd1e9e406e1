package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// Identity inputs (spec 2.3).
type IdentityOptions struct {
	// WorkerID is agent.worker_id / CLEARML_WORKER_ID; used verbatim.
	WorkerID string
	// WorkerName is agent.worker_name / CLEARML_WORKER_NAME, else the host name.
	WorkerName string
	// VisibleGPUs is NVIDIA_VISIBLE_DEVICES (falling back to
	// CUDA_VISIBLE_DEVICES); Set tells an empty value from an unset one.
	VisibleGPUs    string
	VisibleGPUsSet bool
	// DynamicGPUs selects the ":dgpu" prefix.
	DynamicGPUs bool
	// Dir holds the instance files (default: the system temp folder), as
	// upstream, so that both agents see each other.
	Dir string
	// Signature summarises the daemon's identifying arguments (queues,
	// GPUs, configuration); `--stop` with the same arguments matches it.
	// It lives in a side file, so upstream still reads the instance file.
	Signature string
}

// Instance is this daemon's claim on a worker id on this host. Release it
// when the daemon exits.
type Instance struct {
	WorkerID   string
	WorkerName string
	Slot       int
	// Warnings say what other users' files the registration worked
	// around, for the daemon's log.
	Warnings []string
	path     string
}

// ErrDuplicateWorker means a live daemon on this host has the same id.
var ErrDuplicateWorker = errors.New("an instance with the same worker id is already running")

const lockName = "_.clearmlagent_global.lock"

// ComputeName returns the worker name and, when it is determined without a
// slot, the worker id (spec 2.3 steps 1 and 2).
func ComputeName(o IdentityOptions) (name, id string) {
	name = o.WorkerName
	if name == "" {
		name, _ = os.Hostname()
	}
	if o.WorkerID != "" {
		return name, o.WorkerID
	}
	if o.VisibleGPUsSet {
		switch v := strings.TrimSpace(o.VisibleGPUs); {
		case v == "none":
			name += ":cpu"
		case v != "":
			prefix := ":gpu"
			if o.DynamicGPUs {
				prefix = ":dgpu"
			}
			return name, name + prefix + strings.ReplaceAll(v, ":", ".")
		}
	}
	return name, ""
}

// Register claims a worker id on this host: the given or derived one, or
// "<name>:<lowest free slot>". Two daemons never get the same id: the
// claim is made under a host-wide file lock, in instance files that dead
// processes' entries are cleaned from.
func Register(o IdentityOptions) (*Instance, error) {
	dir := o.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	for _, v := range []struct{ what, value string }{{"worker id", o.WorkerID}, {"worker name", o.WorkerName}} {
		if err := checkName(v.what, v.value); err != nil {
			return nil, err
		}
	}
	name, id := ComputeName(o)
	unlock, warnings, err := lockHost(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	defer unlock()
	used := map[int]bool{}
	ids := map[string]instanceFile{}
	for _, e := range listInstances(dir) {
		used[e.slot] = true
		ids[e.id] = e
	}
	if id != "" {
		if e, ok := ids[id]; ok {
			return nil, fmt.Errorf("%w: worker id %q is claimed by %s (owner %s, pid %d)", ErrDuplicateWorker, id, e.path, fileOwner(e.path), e.pid)
		}
	}
	slot := 0
	for used[slot] {
		slot++
	}
	if id == "" {
		id = fmt.Sprintf("%s:%d", name, slot)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	path := filepath.Join(dir, fmt.Sprintf(".clearmlagent_%d_%s.tmp", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := writeNew(path, fmt.Sprintf("%s\n%d", id, slot)); err != nil {
		return nil, fmt.Errorf("writing instance file: %w", err)
	}
	if o.Signature != "" {
		if err := writeNew(path+".sig", o.Signature); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("writing instance file: %w", err)
		}
	}
	return &Instance{WorkerID: id, WorkerName: name, Slot: slot, Warnings: warnings, path: path}, nil
}

// checkName refuses a worker id or name with a control character: the
// instance files hold one id per line, and the server's worker list, the
// logs and the console show it.
func checkName(what, v string) error {
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q has a control character (agent.%s, CLEARML_%s): use printable characters only",
				what, v, strings.ReplaceAll(what, " ", "_"), strings.ToUpper(strings.ReplaceAll(what, " ", "_")))
		}
	}
	return nil
}

// Release removes the instance file.
func (in *Instance) Release() {
	if in != nil && in.path != "" {
		removeInstance(in.path)
	}
}

func removeInstance(path string) {
	os.Remove(path)
	os.Remove(path + ".sig")
	os.Remove(path + drainingSuffix)
}

// drainingSuffix names the side file that says a daemon is draining.
const drainingSuffix = ".draining"

// MarkDraining records that the daemon took its first stop signal (it
// takes no new task). `--stop` waits for it before its second signal,
// which aborts the running task: two signals sent at once can reach the
// daemon as one.
func (in *Instance) MarkDraining() {
	if in != nil && in.path != "" {
		os.WriteFile(in.path+drainingSuffix, nil, 0o644)
	}
}

// RunningInstance is a live daemon found on this host.
type RunningInstance struct {
	PID       int
	WorkerID  string
	Slot      int
	Signature string
	// Draining: it took a stop signal (MarkDraining).
	Draining bool
}

// Running lists the live daemons of this host (dead entries are removed).
func Running(dir string) []RunningInstance {
	if dir == "" {
		dir = os.TempDir()
	}
	var out []RunningInstance
	for _, e := range listInstances(dir) {
		out = append(out, RunningInstance{PID: e.pid, WorkerID: e.id, Slot: e.slot, Signature: e.sig, Draining: e.draining})
	}
	return out
}

type instanceFile struct {
	path     string
	pid      int
	id       string
	slot     int
	sig      string
	draining bool
}

// writeNew creates a file that must not exist yet (never through a link
// planted in the shared folder), readable by every user: other agents
// read the instance files.
func writeNew(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func listInstances(dir string) []instanceFile {
	matches, _ := filepath.Glob(filepath.Join(dir, ".clearmlagent_*.tmp"))
	var out []instanceFile
	for _, m := range matches {
		parts := strings.SplitN(strings.TrimPrefix(filepath.Base(m), ".clearmlagent_"), "_", 2)
		pid, err := strconv.Atoi(parts[0])
		if err != nil {
			continue
		}
		if st, err := os.Lstat(m); err != nil || !st.Mode().IsRegular() {
			continue // a link or a folder another user planted
		}
		if !alive(pid) {
			removeInstance(m)
			continue
		}
		if !trustedInstance(m, pid) {
			continue // another user's file for a process that is no agent of theirs
		}
		raw, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		id, slotText, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
		slot, err := strconv.Atoi(strings.TrimSpace(slotText))
		if err != nil {
			slot = -1
		}
		sig, _ := os.ReadFile(m + ".sig")
		_, err = os.Stat(m + drainingSuffix)
		out = append(out, instanceFile{path: m, pid: pid, id: strings.TrimSpace(id), slot: slot, sig: string(sig), draining: err == nil})
	}
	return out
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
