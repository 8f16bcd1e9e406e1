package gpu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Allocation is the GPUs one task holds.
type Allocation struct {
	Task string `json:"task"`
	// Devices are the ids the task sees in NVIDIA_VISIBLE_DEVICES ("0",
	// "1", or a MIG slice "0.1" given as "0:1").
	Devices []string `json:"devices"`
	// Share is the fraction of each device held (1 for whole GPUs).
	Share float64 `json:"share"`
	// Suffix is the worker id part upstream uses: "0,1" for whole GPUs,
	// "0.5a" for half of GPU 0 (letter: which half).
	Suffix string `json:"suffix"`
	Queue  string `json:"queue,omitempty"`
	// pending: reserved for a task not known yet; not saved.
	pending bool
}

// Visible is the NVIDIA_VISIBLE_DEVICES value of the allocation.
func (a Allocation) Visible() string {
	v := make([]string, len(a.Devices))
	for i, d := range a.Devices {
		v[i] = strings.ReplaceAll(d, ".", ":")
	}
	return strings.Join(v, ",")
}

// Allocator owns a daemon's devices. It is safe for concurrent use. With
// a state path, every change is written (atomically) before it is
// reported, so a restarted daemon starts from what its predecessor held.
type Allocator struct {
	mu      sync.Mutex
	devices []string
	held    map[string]Allocation // by task
	path    string
}

type state struct {
	Devices     []string     `json:"devices"`
	Allocations []Allocation `json:"allocations"`
}

// NewAllocator manages devices; path ("" for none) keeps the state. An
// existing state for the same devices is loaded.
func NewAllocator(devices []string, path string) (*Allocator, error) {
	a := &Allocator{devices: devices, held: map[string]Allocation{}, path: path}
	if path == "" {
		return a, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the GPU allocation state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading the GPU allocation state %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, d := range devices {
		known[d] = true
	}
	for _, al := range st.Allocations {
		ok := al.Task != ""
		for _, d := range al.Devices {
			ok = ok && known[d]
		}
		if ok {
			a.held[al.Task] = al
		}
	}
	return a, nil
}

// Devices are the devices the allocator owns, in order.
func (a *Allocator) Devices() []string { return append([]string(nil), a.devices...) }

// Held returns the current allocations, by task.
func (a *Allocator) Held() map[string]Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]Allocation, len(a.held))
	for k, v := range a.held {
		out[k] = v
	}
	return out
}

// Free returns how much of each device is not held by this daemon's tasks
// nor used by others (external, from Busy).
func (a *Allocator) Free(external map[string]float64) map[string]float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.freeLocked(external)
}

func (a *Allocator) freeLocked(external map[string]float64) map[string]float64 {
	free := map[string]float64{}
	for _, d := range a.devices {
		free[d] = 1 - external[d]
	}
	for _, al := range a.held {
		for _, d := range al.Devices {
			free[d] -= al.Share
		}
	}
	for d, f := range free {
		if f < 1e-9 {
			free[d] = 0
		}
	}
	return free
}

// Fits reports whether a task of spec could start now; unusable devices
// (failing the admission check) count as taken.
func (a *Allocator) Fits(spec QueueSpec, external map[string]float64, unusable map[string]bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.choose(spec, a.freeLocked(external), unusable)
	return ok
}

// Allocate gives task the devices spec asks for, or returns false when
// they are not free.
func (a *Allocator) Allocate(task string, spec QueueSpec, external map[string]float64, unusable map[string]bool) (Allocation, bool, error) {
	return a.allocate(task, spec, external, unusable, false)
}

// Reserve is Allocate for a task not known yet (key names the
// reservation): it is held in memory only, until Rename binds it to the
// task (and saves it) or Release drops it.
func (a *Allocator) Reserve(key string, spec QueueSpec, external map[string]float64, unusable map[string]bool) (Allocation, bool, error) {
	return a.allocate(key, spec, external, unusable, true)
}

func (a *Allocator) allocate(task string, spec QueueSpec, external map[string]float64, unusable map[string]bool, pending bool) (Allocation, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if al, ok := a.held[task]; ok {
		return al, true, nil
	}
	al, ok := a.choose(spec, a.freeLocked(external), unusable)
	if !ok {
		return Allocation{}, false, nil
	}
	al.Task, al.Queue, al.pending = task, spec.Queue, pending
	if !spec.Whole() {
		al.Suffix = fractionSuffix(al.Devices[0], al.Share, a.letters(al.Devices[0]))
	}
	a.held[task] = al
	if pending {
		return al, true, nil
	}
	if err := a.saveLocked(); err != nil {
		delete(a.held, task)
		return Allocation{}, false, err
	}
	return al, true, nil
}

// choose picks devices: whole ones in index order up to Max (at least
// Min), or the fraction's tightest-fitting device.
func (a *Allocator) choose(spec QueueSpec, free map[string]float64, unusable map[string]bool) (Allocation, bool) {
	if spec.Whole() {
		var whole []string
		for _, d := range a.devices {
			if free[d] >= 1-1e-9 && !unusable[d] {
				whole = append(whole, d)
			}
		}
		if float64(len(whole)) < spec.Min {
			return Allocation{}, false
		}
		n := min(len(whole), int(spec.Max))
		devs := append([]string(nil), whole[:n]...)
		return Allocation{Devices: devs, Share: 1, Suffix: strings.Join(devs, ",")}, true
	}
	want := spec.Max
	best, bestFree := "", 2.0
	for _, d := range a.devices {
		if f := free[d]; !unusable[d] && f+1e-9 >= want && f < bestFree {
			best, bestFree = d, f
		}
	}
	if best == "" {
		return Allocation{}, false
	}
	return Allocation{Devices: []string{best}, Share: want}, true
}

// letters are the fraction letters in use on a device.
func (a *Allocator) letters(dev string) map[byte]bool {
	used := map[byte]bool{}
	for _, al := range a.held {
		if al.Share < 1 && len(al.Devices) == 1 && al.Devices[0] == dev && al.Suffix != "" {
			used[al.Suffix[len(al.Suffix)-1]] = true
		}
	}
	return used
}

// fractionSuffix is upstream's encoding: GPU index, the fraction's digits
// after "0.", and the first free letter ("0.5a", "1.25b").
func fractionSuffix(dev string, share float64, used map[byte]bool) string {
	digits := strings.TrimPrefix(strconv.FormatFloat(share, 'f', -1, 64), "0.")
	letter := byte('a')
	for used[letter] && letter < 'z' {
		letter++
	}
	return dev + "." + digits + string(letter)
}

// Grow gives a reservation (Reserve) of a range of whole GPUs the
// devices freed since it was made, up to the range's maximum, so that the
// task taken with it gets the GPUs free when it is taken, not only those
// free when the room was reserved. Any other allocation is returned as it
// is.
func (a *Allocator) Grow(key string, spec QueueSpec, external map[string]float64, unusable map[string]bool) Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.held[key]
	if !ok || !al.pending || !spec.Whole() || spec.Min == spec.Max || float64(len(al.Devices)) >= spec.Max {
		return al
	}
	delete(a.held, key) // its devices count as free for the new choice
	grown, ok := a.choose(spec, a.freeLocked(external), unusable)
	if !ok || len(grown.Devices) <= len(al.Devices) {
		a.held[key] = al
		return al
	}
	grown.Task, grown.Queue, grown.pending = al.Task, al.Queue, true
	a.held[key] = grown
	return grown
}

// Rename moves an allocation to another key (a reservation made before
// the task was known gets the task's id).
func (a *Allocator) Rename(from, to string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.held[from]
	if !ok {
		return fmt.Errorf("no GPU allocation %q", from)
	}
	delete(a.held, from)
	al.Task, al.pending = to, false
	a.held[to] = al
	return a.saveLocked()
}

// Release frees a task's devices.
func (a *Allocator) Release(task string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	al, ok := a.held[task]
	if !ok {
		return nil
	}
	delete(a.held, task)
	if al.pending {
		return nil
	}
	return a.saveLocked()
}

func (a *Allocator) saveLocked() error {
	if a.path == "" {
		return nil
	}
	st := state{Devices: a.devices}
	for _, al := range a.held {
		if !al.pending {
			st.Allocations = append(st.Allocations, al)
		}
	}
	sort.Slice(st.Allocations, func(i, j int) bool { return st.Allocations[i].Task < st.Allocations[j].Task })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return fmt.Errorf("saving the GPU allocation state: %w", err)
	}
	tmp := a.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("saving the GPU allocation state: %w", err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		return fmt.Errorf("saving the GPU allocation state: %w", err)
	}
	return nil
}

var fractionEntry = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+)\.(\d+)([a-z])$`) })

// Busy reads the GPUs other workers of this host hold from their ids
// (upstream's protocol: a worker "<host>:gpu0,1" holds GPUs 0 and 1,
// "<host>:gpu0.5a" half of GPU 0, "<host>:gpu1.2" the MIG slice 1.2).
// ids that are this daemon's own children are skipped by the caller.
func Busy(workerIDs []string, host string) map[string]float64 {
	busy := map[string]float64{}
	prefix := host + ":gpu"
	for _, id := range workerIDs {
		rest, ok := strings.CutPrefix(id, prefix)
		if !ok {
			continue
		}
		// "host:gpu0,1" or "host:gpu0,1:service:..." -- the GPU list ends at ':'.
		rest, _, _ = strings.Cut(rest, ":")
		for _, e := range strings.Split(rest, ",") {
			if m := fractionEntry().FindStringSubmatch(e); m != nil {
				f, _ := strconv.ParseFloat("0."+m[2], 64)
				busy[m[1]] += f
				continue
			}
			if _, err := strconv.ParseFloat(e, 64); err == nil {
				busy[e] = 1
			}
		}
	}
	return busy
}
