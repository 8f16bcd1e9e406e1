package gpu

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/testbin"
)

func TestParseQueueSpecs(t *testing.T) {
	t.Parallel()
	got, err := ParseQueueSpecs([]string{"dual=2", "single=1", "flex=1-4", "any=-3", "half=0.5", "a=b=1"})
	want := []QueueSpec{{"dual", 2, 2}, {"single", 1, 1}, {"flex", 1, 4}, {"any", 1, 3}, {"half", 0.5, 0.5}, {"a=b", 1, 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("specs = %v %v", got, err)
	}
	for in, msg := range map[string]string{
		"noequals":  "queue must be in format <queue_name>=<num_gpus>",
		"=2":        "queue must be in format",
		"q=0":       "Parsing min/max number of gpus <= 0 is not allowed",
		"q=-0":      "<= 0 is not allowed",
		"q=1.5":     "fractional gpu cannot be > 1",
		"q=3-2":     "larger than the maximum",
		"q=0.2-0.5": "a fraction of a GPU cannot be a range",
		"q=0.5-2":   "a range of whole GPUs starts at 1",
		"q=x":       "not a number",
		"q=":        "not a number",
	} {
		if _, err := ParseQueueSpecs([]string{in}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
	}
	if _, err := ParseQueueSpecs([]string{"a=1", "a=2"}); err == nil {
		t.Error("duplicate queue accepted")
	}
}

func TestParseDevices(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{"0-3": {"0", "1", "2", "3"}, "2": {"2"}, "0,2,5": {"0", "2", "5"}, "0:1,0:2": {"0.1", "0.2"}} {
		if got, err := ParseDevices(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q = %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "all", "0-1,2", "0-1-2", "3-1", "a,b", "0,0", "-1"} {
		if _, err := ParseDevices(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAllocateWholeRangesAndFractions(t *testing.T) {
	t.Parallel()
	a, _ := NewAllocator([]string{"0", "1", "2", "3"}, "")
	must := func(task string, s QueueSpec, external map[string]float64) Allocation {
		t.Helper()
		al, ok, err := a.Allocate(task, s, external, nil)
		if err != nil || !ok {
			t.Fatalf("allocate %s %v: %v %v", task, s, ok, err)
		}
		return al
	}
	dual := must("t1", QueueSpec{"dual", 2, 2}, nil)
	if dual.Visible() != "0,1" || dual.Suffix != "0,1" {
		t.Fatalf("dual = %+v", dual)
	}
	// GPU 2 is used by another worker of the host: the range gets 3 only.
	flex := must("t2", QueueSpec{"flex", 1, 4}, map[string]float64{"2": 1})
	if flex.Visible() != "3" {
		t.Fatalf("flex = %+v", flex)
	}
	if a.Fits(QueueSpec{"single", 1, 1}, map[string]float64{"2": 1}, nil) {
		t.Fatal("a fifth GPU fits")
	}
	if err := a.Release("t1"); err != nil {
		t.Fatal(err)
	}
	h1 := must("h1", QueueSpec{"half", 0.5, 0.5}, nil)
	h2 := must("h2", QueueSpec{"half", 0.5, 0.5}, nil)
	if h1.Visible() != "0" || h2.Visible() != "0" || h1.Suffix != "0.5a" || h2.Suffix != "0.5b" {
		t.Fatalf("halves = %+v %+v", h1, h2)
	}
	// GPU 0 is full (two halves) and GPU 1 free: a quarter takes GPU 1,
	// the next quarter fits tightest there too, beside the first.
	q1 := must("q1", QueueSpec{"quarter", 0.25, 0.25}, nil)
	q2 := must("q2", QueueSpec{"quarter", 0.25, 0.25}, nil)
	if q1.Visible() != "1" || q2.Visible() != "1" || q2.Suffix != "1.25b" {
		t.Fatalf("quarters = %+v %+v", q1, q2)
	}
	free := a.Free(nil)
	if free["0"] != 0 || free["1"] != 0.5 || free["2"] != 1 || free["3"] != 0 {
		t.Fatalf("free = %v", free)
	}
	// Unusable devices (admission check) count as taken.
	if a.Fits(QueueSpec{"single", 1, 1}, nil, map[string]bool{"2": true}) {
		t.Fatal("an unusable GPU was offered")
	}
}

// TestGrowReservation: a reserved range takes the GPUs freed since, up to
// its maximum, never one held or used by another; other reservations and
// allocations stay as they are.
func TestGrowReservation(t *testing.T) {
	t.Parallel()
	flex := QueueSpec{"flex", 1, 4}
	for _, tc := range []struct {
		name     string
		spec     QueueSpec
		pending  bool     // grow a reservation (else an allocation of a known task)
		external []string // GPUs another worker uses when it grows
		want     string
	}{
		{name: "range, GPU 0 freed", spec: flex, pending: true, want: "0,2,3"},
		{name: "range, GPU 0 freed and used by another worker", spec: flex, pending: true, external: []string{"0"}, want: "2,3"},
		{name: "range up to 2, already 2", spec: QueueSpec{"flex2", 1, 2}, pending: true, want: "2,3"},
		{name: "fixed count", spec: QueueSpec{"dual", 2, 2}, pending: true, want: "2,3"},
		{name: "a task's allocation", spec: flex, want: "2,3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, _ := NewAllocator([]string{"0", "1", "2", "3"}, "")
			// GPUs 0 and 1 held by tasks; the reservation gets 2 and 3.
			for _, task := range []string{"on-0", "on-1"} {
				if _, ok, err := a.Allocate(task, QueueSpec{"one", 1, 1}, nil, nil); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			var err error
			var ok bool
			var al Allocation
			if tc.pending {
				al, ok, err = a.Reserve("pending-1", tc.spec, nil, nil)
			} else {
				al, ok, err = a.Allocate("pending-1", tc.spec, nil, nil)
			}
			if !ok || err != nil || al.Visible() != "2,3" {
				t.Fatalf("reserved %+v %v %v", al, ok, err)
			}
			a.Release("on-0")
			external := map[string]float64{}
			for _, d := range tc.external {
				external[d] = 1
			}
			got := a.Grow("pending-1", tc.spec, external, nil)
			if got.Visible() != tc.want || a.Held()["pending-1"].Visible() != tc.want {
				t.Fatalf("grown to %q (held %q), want %q", got.Visible(), a.Held()["pending-1"].Visible(), tc.want)
			}
			if free := a.Free(external); free["1"] != 0 {
				t.Fatalf("GPU 1 (held by a task) became free: %v", free)
			}
		})
	}
}

func TestAllocatorConcurrentNeverOverlaps(t *testing.T) {
	t.Parallel()
	a, _ := NewAllocator([]string{"0", "1", "2", "3"}, filepath.Join(t.TempDir(), "state.json"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string][]string{}
	for i := range 20 {
		wg.Go(func() {
			task := "t" + string(rune('a'+i))
			if al, ok, err := a.Allocate(task, QueueSpec{"q", 1, 1}, nil, nil); err == nil && ok {
				mu.Lock()
				got[task] = al.Devices
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	owner := map[string]string{}
	for task, devs := range got {
		for _, d := range devs {
			if other, ok := owner[d]; ok {
				t.Fatalf("GPU %s given to %s and %s", d, other, task)
			}
			owner[d] = task
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d tasks got a GPU, want 4", len(got))
	}
}

func TestAllocatorStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gpus.json")
	a, _ := NewAllocator([]string{"0", "1"}, path)
	if _, ok, err := a.Allocate("running", QueueSpec{"q", 1, 1}, nil, nil); !ok || err != nil {
		t.Fatal(ok, err)
	}
	b, err := NewAllocator([]string{"0", "1"}, path)
	if err != nil {
		t.Fatal(err)
	}
	if held := b.Held(); len(held) != 1 || held["running"].Visible() != "0" {
		t.Fatalf("after restart: %v", held)
	}
	al, ok, _ := b.Allocate("next", QueueSpec{"q", 1, 1}, nil, nil)
	if !ok || al.Visible() != "1" {
		t.Fatalf("restarted daemon allocated %+v %v", al, ok)
	}
	if _, ok, _ := b.Allocate("third", QueueSpec{"q", 1, 1}, nil, nil); ok {
		t.Fatal("double allocation after restart")
	}
	// A state for other devices is not trusted.
	c, _ := NewAllocator([]string{"5"}, path)
	if len(c.Held()) != 0 {
		t.Fatalf("foreign state used: %v", c.Held())
	}
	os.WriteFile(path, []byte("{broken"), 0o600)
	if _, err := NewAllocator([]string{"0"}, path); err == nil {
		t.Fatal("corrupt state accepted silently")
	}
}

func TestBusy(t *testing.T) {
	t.Parallel()
	got := Busy([]string{"host:gpu0,1", "host:gpu2.5a", "host:gpu2.25b", "host:gpu3.1", "other:gpu3", "host:cpu:0", "host:dgpu0-3"}, "host")
	want := map[string]float64{"0": 1, "1": 1, "2": 0.75, "3.1": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("busy = %v", got)
	}
}

type fakeInventory struct{ devs []Device }

func (f fakeInventory) Devices(context.Context) ([]Device, error) { return f.devs, nil }

func TestAdmission(t *testing.T) {
	t.Parallel()
	inv := fakeInventory{[]Device{
		{Index: "0", MemoryFree: 80000},
		{Index: "1", MemoryFree: 500},
		{Index: "2", MemoryFree: 70000, Processes: []Process{{PID: 4242, Name: "python"}}},
		{Index: "3", MemoryFree: 70000, Processes: []Process{{PID: 7, Name: "ours"}}},
	}}
	ours := func(pid int) bool { return pid == 7 }
	got, err := Admission{Enabled: true, MinFreeMB: 1000}.Unusable(context.Background(), inv, []string{"0", "1", "2", "3", "4", "0.1"}, ours)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["0"]; ok || len(got) != 3 || !strings.Contains(got["1"], "500 MiB free") ||
		!strings.Contains(got["2"], "process 4242") || got["4"] != "not found by nvidia-smi" {
		t.Fatalf("unusable = %v", got)
	}
	off, _ := Admission{}.Unusable(context.Background(), inv, []string{"1"}, nil)
	if len(off) != 0 {
		t.Fatal("disabled check refused a device")
	}
}

// The real inventory reads nvidia-smi's CSV; here a stand-in nvidia-smi
// prints what the real one prints.
func TestNvidiaSMIParsing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := `#!/bin/sh
case "$1" in
--query-gpu=*) printf '0, GPU-aaa, NVIDIA H200, 143771, 143000\n1, GPU-bbb, NVIDIA H200, 143771, 1200\n' ;;
--query-compute-apps=*) printf 'GPU-bbb, 999, /usr/bin/python3, 142000\n' ;;
esac
`
	testbin.WriteScript(t, filepath.Join(dir, "nvidia-smi"), script)
	devs, err := (&NvidiaSMI{Path: filepath.Join(dir, "nvidia-smi")}).Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[1].UUID != "GPU-bbb" || devs[1].MemoryFree != 1200 || len(devs[1].Processes) != 1 || devs[1].Processes[0].PID != 999 {
		t.Fatalf("devices = %+v", devs)
	}
}
