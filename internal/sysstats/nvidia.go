package sysstats

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// NvidiaSMI reads GPUs with `nvidia-smi --query-gpu`.
type NvidiaSMI struct {
	// Path is the nvidia-smi binary.
	Path string
}

// FindNvidiaSMI returns a reader when nvidia-smi is installed, else nil.
func FindNvidiaSMI() GPUReader {
	p, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	return &NvidiaSMI{Path: p}
}

// ReadGPUs implements GPUReader.
func (n *NvidiaSMI) ReadGPUs() ([]GPU, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.Path, "--query-gpu=index,uuid,utilization.gpu,temperature.gpu,memory.used,memory.free",
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil, fmt.Errorf("running nvidia-smi: %w", err)
	}
	return ParseNvidiaSMI(string(out))
}

// ParseNvidiaSMI parses nvidia-smi's CSV output (index, uuid, utilization,
// temperature, memory used, memory free). "[N/A]" values read as 0, except
// utilization, which reads as 100 (MIG devices report none; upstream's
// default_gpu_utilization).
func ParseNvidiaSMI(out string) ([]GPU, error) {
	var gpus []GPU
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 6 {
			return nil, fmt.Errorf("unexpected nvidia-smi line %q", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("unexpected nvidia-smi index %q", f[0])
		}
		num := func(s string, def float64) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return def
			}
			return v
		}
		gpus = append(gpus, GPU{Index: idx, UUID: f[1], Utilization: num(f[2], 100), Temperature: num(f[3], 0),
			MemoryUsed: num(f[4], 0), MemoryFree: num(f[5], 0)})
	}
	return gpus, nil
}
