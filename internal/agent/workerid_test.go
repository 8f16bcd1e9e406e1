package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func TestComputeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o        IdentityOptions
		name, id string
	}{
		{IdentityOptions{WorkerName: "host"}, "host", ""},
		{IdentityOptions{WorkerName: "host", WorkerID: "fixed:1"}, "host", "fixed:1"},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "0", VisibleGPUsSet: true}, "host", "host:gpu0"},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "0,1", VisibleGPUsSet: true}, "host", "host:gpu0,1"},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "0:1", VisibleGPUsSet: true}, "host", "host:gpu0.1"},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "0-3", VisibleGPUsSet: true, DynamicGPUs: true}, "host", "host:dgpu0-3"},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "none", VisibleGPUsSet: true}, "host:cpu", ""},
		{IdentityOptions{WorkerName: "host", VisibleGPUs: "", VisibleGPUsSet: true}, "host", ""},
	}
	for _, tc := range tests {
		name, id := ComputeName(tc.o)
		if name != tc.name || id != tc.id {
			t.Errorf("%+v: got %q %q, want %q %q", tc.o, name, id, tc.name, tc.id)
		}
	}
}

func TestRegisterGivesDistinctSlots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	var insts []*Instance
	for range 8 {
		wg.Go(func() {
			in, err := Register(IdentityOptions{WorkerName: "host", Dir: dir})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ids[in.WorkerID] {
				t.Errorf("duplicate id %s", in.WorkerID)
			}
			ids[in.WorkerID] = true
			insts = append(insts, in)
		})
	}
	wg.Wait()
	for i := range 8 {
		if !ids[fmt.Sprintf("host:%d", i)] {
			t.Errorf("slot %d not used: %v", i, ids)
		}
	}
	// A freed slot is reused; a fixed id cannot be taken twice.
	insts[0].Release()
	in, err := Register(IdentityOptions{WorkerName: "host", Dir: dir})
	if err != nil || !ids[in.WorkerID] {
		t.Fatalf("re-register = %v %v", in, err)
	}
	if _, err := Register(IdentityOptions{WorkerID: in.WorkerID, Dir: dir}); !errors.Is(err, ErrDuplicateWorker) {
		t.Fatalf("duplicate fixed id: %v", err)
	}
	if n := len(Running(dir)); n != 8 {
		t.Fatalf("running = %d", n)
	}
}

func TestMarkDraining(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, err := Register(IdentityOptions{WorkerName: "host", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	draining := func() []bool {
		var out []bool
		for _, r := range Running(dir) {
			out = append(out, r.Draining)
		}
		return out
	}
	if got := draining(); len(got) != 1 || got[0] {
		t.Fatalf("before the mark: %v", got)
	}
	in.MarkDraining()
	if got := draining(); len(got) != 1 || !got[0] {
		t.Fatalf("after the mark: %v", got)
	}
	in.Release()
	if left, _ := filepath.Glob(filepath.Join(dir, ".clearmlagent_*")); len(left) != 0 {
		t.Fatalf("files left after Release: %v", left)
	}
}
