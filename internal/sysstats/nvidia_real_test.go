package sysstats

import (
	"testing"
	"time"
)

// TestRealNvidiaSMI reads a real GPU through nvidia-smi. It runs where an
// NVIDIA driver is installed and skips elsewhere, saying so.
func TestRealNvidiaSMI(t *testing.T) {
	t.Parallel()
	r := FindNvidiaSMI()
	if r == nil {
		t.Skip("nvidia-smi not found: no NVIDIA driver on this machine; GPU statistics are tested with a fake reader")
	}
	gpus, err := r.ReadGPUs()
	if err != nil {
		t.Fatalf("reading GPUs: %v", err)
	}
	if len(gpus) == 0 {
		t.Fatal("nvidia-smi listed no GPU")
	}
	for _, g := range gpus {
		t.Logf("GPU %d %s: util %.0f%%, %.0f C, memory used %.0f MiB, free %.0f MiB", g.Index, g.UUID, g.Utilization, g.Temperature, g.MemoryUsed, g.MemoryFree)
		if g.MemoryUsed+g.MemoryFree <= 0 || g.UUID == "" {
			t.Errorf("implausible reading %+v", g)
		}
	}
	s := &Sampler{GPUs: r, Visible: []string{"0"}}
	s.Sample(time.Now())
	stats := s.Sample(time.Now().Add(time.Second))
	usage, ok := stats["gpu_usage"].([]float64)
	if !ok || len(usage) != 1 {
		t.Fatalf("machine stats for GPU 0 = %v", stats)
	}
	t.Logf("machine_stats: %v", stats)
}
