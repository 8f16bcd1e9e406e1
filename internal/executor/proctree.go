package executor

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The processes under the shim. The shim is a child subreaper (see
// runShim): every process its task starts stays below it, whatever it
// does, so "the task" is the shim's descendants.
//
// They are found from the shim down: each process's children are listed
// by the kernel in /proc/PID/task/TID/children (one file per thread, a
// child belongs to the thread that started it). That reads a few files
// for a task with a few processes, where reading every process's parent
// reads one file per process of the machine: at the end of each of 50
// services-mode tasks ending together on 2 cores, that scan was 29 % of
// the supervisors' CPU. A kernel built without the children files
// (CONFIG_PROC_CHILDREN) gets the scan.

// childrenFiles reports whether the kernel lists children in /proc.
var childrenFiles = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/thread-self/children")
	return err == nil
})

// descendants lists the live processes under root.
func descendants(root int) []int {
	if childrenFiles() {
		return descendantsDown(root)
	}
	return descendantsScan(root)
}

// walk lists what is under root, breadth first, given each process's
// children.
func walk(root int, children func(pid int) []int) []int {
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children(p) {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// descendantsDown walks down from root through the children files. A
// zombie is left out, and so is what it had (the kernel gave its
// children to the nearest subreaper, which lists them itself).
func descendantsDown(root int) []int {
	return walk(root, func(pid int) []int {
		var live []int
		for _, c := range childrenOf(pid) {
			if f, err := statFields(strconv.Itoa(c)); err == nil && len(f) > 0 && f[0] != "Z" && f[0] != "X" {
				live = append(live, c)
			}
		}
		return live
	})
}

// childrenOf lists pid's children, from the children file of each of its
// threads (none when it is gone).
func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	threads, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range threads {
		raw, err := os.ReadFile(dir + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(raw)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// descendantsScan lists the live processes under root from every
// process's parent in /proc.
func descendantsScan(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(e.Name())
		if err != nil || len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	return walk(root, func(pid int) []int { return children[pid] })
}

func signalTree(root int, sig syscall.Signal) int {
	n := 0
	for _, pid := range descendants(root) {
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// killTree stops every descendant: SIGTERM, then SIGKILL after grace,
// reaping as they go.
func killTree(root int, grace time.Duration) {
	if signalTree(root, syscall.SIGTERM) == 0 {
		ReapAll()
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		ReapAll()
		if len(descendants(root)) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 50 {
		signalTree(root, syscall.SIGKILL)
		ReapAll()
		if len(descendants(root)) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ReapAll reaps the children that have exited, without waiting.
func ReapAll() {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if got <= 0 || err != nil {
			return
		}
	}
}
