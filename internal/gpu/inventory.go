package gpu

import (
	"context"
	"encoding/csv"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Device is one GPU as the inventory sees it.
type Device struct {
	Index       string // "0", or "0.1" for a MIG slice
	UUID        string
	Name        string
	MemoryTotal float64 // MiB
	MemoryFree  float64 // MiB
	// Processes are the compute processes running on the device.
	Processes []Process
}

// Process is a compute process on a GPU.
type Process struct {
	PID        int
	Name       string
	UsedMemory float64 // MiB
}

// Inventory lists the machine's GPUs. NvidiaSMI is the real one; tests
// use a fake.
type Inventory interface {
	Devices(ctx context.Context) ([]Device, error)
}

// NvidiaSMI reads the inventory with nvidia-smi (no cgo: NVML is not
// linked into the static binary).
type NvidiaSMI struct {
	// Path of nvidia-smi (default: found on PATH).
	Path string
}

// FindNvidiaSMI returns the inventory, or nil when nvidia-smi is not installed.
func FindNvidiaSMI() *NvidiaSMI {
	p, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	return &NvidiaSMI{Path: p}
}

func (n *NvidiaSMI) query(ctx context.Context, args ...string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.Path, append(args, "--format=csv,noheader,nounits")...).Output()
	if err != nil {
		return nil, fmt.Errorf("running nvidia-smi %s: %w", args[0], err)
	}
	r := csv.NewReader(strings.NewReader(string(out)))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading nvidia-smi %s output: %w", args[0], err)
	}
	return rows, nil
}

// Devices implements Inventory.
func (n *NvidiaSMI) Devices(ctx context.Context) ([]Device, error) {
	rows, err := n.query(ctx, "--query-gpu=index,uuid,name,memory.total,memory.free")
	if err != nil {
		return nil, err
	}
	var devs []Device
	byUUID := map[string]int{}
	for _, row := range rows {
		if len(row) < 5 {
			return nil, fmt.Errorf("reading nvidia-smi --query-gpu output: unexpected line %q", strings.Join(row, ","))
		}
		d := Device{Index: strings.TrimSpace(row[0]), UUID: strings.TrimSpace(row[1]), Name: strings.TrimSpace(row[2])}
		d.MemoryTotal, _ = strconv.ParseFloat(strings.TrimSpace(row[3]), 64)
		d.MemoryFree, _ = strconv.ParseFloat(strings.TrimSpace(row[4]), 64)
		byUUID[d.UUID] = len(devs)
		devs = append(devs, d)
	}
	apps, err := n.query(ctx, "--query-compute-apps=gpu_uuid,pid,process_name,used_memory")
	if err != nil {
		return nil, err
	}
	for _, row := range apps {
		if len(row) < 4 {
			continue
		}
		i, ok := byUUID[strings.TrimSpace(row[0])]
		if !ok {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(row[1]))
		mem, _ := strconv.ParseFloat(strings.TrimSpace(row[3]), 64)
		devs[i].Processes = append(devs[i].Processes, Process{PID: pid, Name: strings.TrimSpace(row[2]), UsedMemory: mem})
	}
	return devs, nil
}

// Admission is the check made before a task is taken
// (agent.gpu_admission): a device with less free memory than MinFreeMB,
// or with compute processes the daemon did not start, is not used.
type Admission struct {
	Enabled bool
	// MinFreeMB is the free memory a device needs (0: no minimum).
	MinFreeMB float64
	// AllowForeign accepts devices running processes of others.
	AllowForeign bool
}

// Unusable returns the devices the check refuses, each with why. ours
// reports whether a process id belongs to one of the daemon's tasks.
// Devices the inventory does not list are refused ("not found").
func (a Admission) Unusable(ctx context.Context, inv Inventory, devices []string, ours func(pid int) bool) (map[string]string, error) {
	out := map[string]string{}
	if !a.Enabled || inv == nil {
		return out, nil
	}
	list, err := inv.Devices(ctx)
	if err != nil {
		return nil, err
	}
	found := map[string]Device{}
	for _, d := range list {
		found[d.Index] = d
		found[d.UUID] = d
	}
	for _, id := range devices {
		d, ok := found[id]
		if !ok {
			// A MIG slice is checked on its parent GPU.
			parent, _, _ := strings.Cut(id, ".")
			if d, ok = found[parent]; !ok {
				out[id] = "not found by nvidia-smi"
				continue
			}
		}
		if a.MinFreeMB > 0 && d.MemoryFree < a.MinFreeMB {
			out[id] = fmt.Sprintf("%.0f MiB free, less than agent.gpu_admission.min_free_memory_mb %.0f", d.MemoryFree, a.MinFreeMB)
			continue
		}
		if !a.AllowForeign {
			for _, p := range d.Processes {
				if ours == nil || !ours(p.PID) {
					out[id] = fmt.Sprintf("used by process %d (%s) that this agent did not start", p.PID, p.Name)
					break
				}
			}
		}
	}
	return out, nil
}
