package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model,omitempty"`
	MemoryGiB float64 `json:"memory_gib,omitempty"`
	Kernel    string  `json:"kernel,omitempty"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	LoadStart string  `json:"load_start,omitempty"` // /proc/loadavg 1, 5, 15 min
	LoadEnd   string  `json:"load_end,omitempty"`
}

func readMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.MemoryGiB = float64(v) / (1 << 20) // kB
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.Join(strings.Fields(v), " ")
				break
			}
		}
		f.Close()
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages, "" where unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// procField reads a "Key: N kB" line of a /proc file such as
// /proc/PID/status or /proc/meminfo.
func procField(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// rssMiB is a process's resident set size.
func rssMiB(pid int) (float64, error) {
	kb, ok := procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
	if !ok {
		return 0, fmt.Errorf("reading the RSS of process %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return float64(kb) / 1024, nil
}

// procStat is what /proc/PID/stat says of a process.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 || i+2 > len(raw) {
		return procStat{}, fmt.Errorf("reading the CPU time of process %d: unexpected /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(raw[i+2:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("reading the CPU time of process %d: short /proc/%d/stat", pid, pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clkTck}, nil
}

func procCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	return st.cpu, err
}

// descendants lists the processes below pid (children, their children...).
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil {
			parent[p] = st.ppid
		}
	}
	var out []int
	in := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if in[pp] && !in[p] {
				in[p] = true
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// treeCPU is the CPU time of pid and the processes below it now.
func treeCPU(pid int) time.Duration {
	total, _ := procCPU(pid)
	for _, p := range descendants(pid) {
		if d, err := procCPU(p); err == nil {
			total += d
		}
	}
	return total
}

// treeRSS is the resident memory of pid and the processes below it.
func treeRSS(pid int) float64 {
	total, _ := rssMiB(pid)
	for _, p := range descendants(pid) {
		if r, err := rssMiB(p); err == nil {
			total += r
		}
	}
	return total
}

// cpuMeter measures a process's CPU use over a wall-clock window.
type cpuMeter struct {
	pid   int
	cpu   time.Duration
	start time.Time
}

func startCPU(pid int) (*cpuMeter, error) {
	c, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{pid: pid, cpu: c, start: time.Now()}, nil
}

// cores is the CPU time used since start per wall second.
func (m *cpuMeter) cores() (float64, error) {
	c, err := procCPU(m.pid)
	if err != nil {
		return 0, err
	}
	return (c - m.cpu).Seconds() / time.Since(m.start).Seconds(), nil
}
