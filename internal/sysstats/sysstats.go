// Package sysstats samples the machine statistics that workers report to
// the server (workers.status_report machine_stats): CPU, memory, disk and
// network from /proc, and GPUs through nvidia-smi when it is present.
// Units follow upstream: sizes in MiB, rates in MiB/s, disk free in percent,
// per-device values as lists.
package sysstats

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// GPUReader reads per-GPU statistics. The real implementation runs
// nvidia-smi; tests use a fake.
type GPUReader interface {
	ReadGPUs() ([]GPU, error)
}

// GPU is one device's reading.
type GPU struct {
	Index       int
	UUID        string
	Utilization float64 // percent
	Temperature float64 // Celsius
	MemoryUsed  float64 // MiB
	MemoryFree  float64 // MiB
}

// Sampler computes machine_stats between successive calls.
type Sampler struct {
	// DiskPath is the folder whose disk's free space is reported (home).
	DiskPath string
	// GPUs reads GPU statistics; nil when there are none (or --cpu-only).
	GPUs GPUReader
	// Visible keeps only these GPU indexes or UUIDs (from
	// NVIDIA_VISIBLE_DEVICES); empty means all.
	Visible []string

	last     time.Time
	lastCPU  cpuTimes
	lastDisk [2]uint64
	lastNet  [2]uint64
	gpuFails int
}

type cpuTimes struct{ busy, total uint64 }

// Sample returns machine_stats: averages and rates since the previous call.
func (s *Sampler) Sample(now time.Time) map[string]any {
	stats := map[string]any{}
	cpu, cerr := readCPU()
	disk, derr := readDiskIO()
	net, nerr := readNetIO()
	elapsed := now.Sub(s.last).Seconds()
	first := s.last.IsZero()
	if cerr == nil && !first && cpu.total >= s.lastCPU.total {
		usage := 0.0
		if d := cpu.total - s.lastCPU.total; d > 0 {
			usage = 100 * float64(cpu.busy-s.lastCPU.busy) / float64(d)
		}
		stats["cpu_usage"] = []float64{round3(usage)}
	}
	if derr == nil && !first && elapsed > 0 {
		stats["disk_read"] = round3(float64(disk[0]-s.lastDisk[0]) / elapsed / (1 << 20))
		stats["disk_write"] = round3(float64(disk[1]-s.lastDisk[1]) / elapsed / (1 << 20))
	}
	if nerr == nil && !first && elapsed > 0 {
		stats["network_rx"] = round3(float64(net[0]-s.lastNet[0]) / elapsed / (1 << 20))
		stats["network_tx"] = round3(float64(net[1]-s.lastNet[1]) / elapsed / (1 << 20))
	}
	s.last, s.lastCPU, s.lastDisk, s.lastNet = now, cpu, disk, net
	if used, avail, err := readMemory(); err == nil {
		stats["memory_used"] = round3(used)
		stats["memory_free"] = round3(avail)
	}
	if s.DiskPath != "" {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(s.DiskPath, &fs); err == nil && fs.Blocks > 0 {
			stats["disk_free_home"] = round3(100 * float64(fs.Bavail) / float64(fs.Blocks))
		}
	}
	s.addGPUs(stats)
	return stats
}

func (s *Sampler) addGPUs(stats map[string]any) {
	if s.GPUs == nil || s.gpuFails >= 3 {
		return
	}
	gpus, err := s.GPUs.ReadGPUs()
	if err != nil {
		s.gpuFails++ // three failures in a row switch GPU monitoring off, as upstream
		return
	}
	s.gpuFails = 0
	var usage, temp, used, free []float64
	for _, g := range gpus {
		if !s.visible(g) {
			continue
		}
		usage = append(usage, round3(g.Utilization))
		temp = append(temp, round3(g.Temperature))
		used = append(used, round3(g.MemoryUsed))
		free = append(free, round3(g.MemoryFree))
	}
	if len(usage) > 0 {
		stats["gpu_usage"], stats["gpu_temperature"] = usage, temp
		stats["gpu_memory_used"], stats["gpu_memory_free"] = used, free
	}
}

func (s *Sampler) visible(g GPU) bool {
	if len(s.Visible) == 0 {
		return true
	}
	for _, v := range s.Visible {
		if v == strconv.Itoa(g.Index) || (g.UUID != "" && v == g.UUID) || strings.HasPrefix(v, strconv.Itoa(g.Index)+".") {
			return true
		}
	}
	return false
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func readCPU() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] != "cpu" {
			continue
		}
		var t cpuTimes
		for i, v := range fields[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			t.total += n
			if i != 3 && i != 4 { // idle, iowait
				t.busy += n
			}
		}
		return t, nil
	}
	return cpuTimes{}, fmt.Errorf("no cpu line in /proc/stat")
}

func readMemory() (usedMiB, availMiB float64, err error) {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	vals := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			n, _ := strconv.ParseFloat(fields[1], 64)
			vals[strings.TrimSuffix(fields[0], ":")] = n / 1024 // kB -> MiB
		}
	}
	total, avail := vals["MemTotal"], vals["MemAvailable"]
	if total == 0 {
		return 0, 0, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	return total - avail, avail, nil
}

// readDiskIO sums bytes read and written by whole disks.
func readDiskIO() ([2]uint64, error) {
	raw, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return [2]uint64{}, err
	}
	var out [2]uint64
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + f[2]); err != nil {
			continue // a partition: its disk is counted already
		}
		r, _ := strconv.ParseUint(f[5], 10, 64)
		w, _ := strconv.ParseUint(f[9], 10, 64)
		out[0] += r * 512
		out[1] += w * 512
	}
	return out, nil
}

// readNetIO sums bytes received and sent on every interface but loopback.
func readNetIO() ([2]uint64, error) {
	raw, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return [2]uint64{}, err
	}
	var out [2]uint64
	for _, line := range strings.Split(string(raw), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		rx, _ := strconv.ParseUint(f[0], 10, 64)
		tx, _ := strconv.ParseUint(f[8], 10, 64)
		out[0] += rx
		out[1] += tx
	}
	return out, nil
}
