package sysstats

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

type fakeGPUs struct {
	gpus []GPU
	err  error
	n    int
}

func (f *fakeGPUs) ReadGPUs() ([]GPU, error) { f.n++; return f.gpus, f.err }

func TestSampleReportsMachineStats(t *testing.T) {
	t.Parallel()
	s := &Sampler{DiskPath: t.TempDir(), GPUs: &fakeGPUs{gpus: []GPU{
		{Index: 0, UUID: "GPU-a", Utilization: 50, Temperature: 60, MemoryUsed: 1000, MemoryFree: 15000},
		{Index: 1, UUID: "GPU-b", Utilization: 10, Temperature: 40, MemoryUsed: 10, MemoryFree: 16000},
	}}, Visible: []string{"1"}}
	now := time.Now()
	s.Sample(now)
	got := s.Sample(now.Add(time.Second))
	for _, k := range []string{"cpu_usage", "memory_used", "memory_free", "disk_free_home", "network_rx", "disk_read"} {
		if _, ok := got[k]; !ok {
			t.Errorf("missing %s in %v", k, got)
		}
	}
	if cpu := got["cpu_usage"].([]float64); len(cpu) != 1 || cpu[0] < 0 || cpu[0] > 100 {
		t.Errorf("cpu_usage = %v", cpu)
	}
	if !reflect.DeepEqual(got["gpu_usage"], []float64{10}) || !reflect.DeepEqual(got["gpu_memory_free"], []float64{16000}) {
		t.Errorf("only visible GPU 1 should be reported: %v", got)
	}
}

func TestGPUMonitoringSwitchesOffAfterThreeFailures(t *testing.T) {
	t.Parallel()
	f := &fakeGPUs{err: errors.New("NVML not found")}
	s := &Sampler{GPUs: f}
	for range 5 {
		s.Sample(time.Now())
	}
	if f.n != 3 {
		t.Fatalf("GPU read %d times, want 3", f.n)
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	t.Parallel()
	out := "0, GPU-5d2c, 37, 45, 1024, 80000\n1, GPU-77aa, [N/A], 50, 0, 81920\n"
	got, err := ParseNvidiaSMI(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []GPU{{0, "GPU-5d2c", 37, 45, 1024, 80000}, {1, "GPU-77aa", 100, 50, 0, 81920}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if _, err := ParseNvidiaSMI("garbage"); err == nil {
		t.Fatal("no error for garbage")
	}
}
