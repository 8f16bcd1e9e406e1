package cli

import (
	"fmt"
	"path/filepath"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/gpu"
	"github.com/goclearml/agent/internal/taskprep"
)

// parallelMode builds the parallel settings of --services-mode and
// --dynamic-gpus (nil for one task at a time) and the queues to resolve
// (with --dynamic-gpus, the names of the name=spec values).
func parallelMode(cfg *config.Config, d *args.Daemon, inst *agent.Instance) (*agent.Parallel, []string, error) {
	if d.ServicesMode != nil && *d.ServicesMode != 0 {
		return &agent.Parallel{Max: max(*d.ServicesMode, 0)}, d.Queues, nil
	}
	if !d.DynamicGPUs {
		return nil, d.Queues, nil
	}
	devices, err := gpu.ParseDevices(d.GPUs)
	if err != nil {
		return nil, nil, err
	}
	specs, err := gpu.ParseQueueSpecs(d.Queues)
	if err != nil {
		return nil, nil, err
	}
	adm, err := admission(cfg)
	if err != nil {
		return nil, nil, err
	}
	var inv gpu.Inventory
	if smi := gpu.FindNvidiaSMI(); smi != nil {
		inv = smi
	} else if adm.Enabled {
		return nil, nil, fmt.Errorf("agent.gpu_admission is enabled but nvidia-smi is not installed: the GPUs cannot be checked")
	}
	state := filepath.Join(taskprep.CacheBase(), "clearml-agent", "gpus", unsafePath().ReplaceAllString(inst.WorkerID, "_")+".json")
	alloc, err := gpu.NewAllocator(devices, state)
	if err != nil {
		return nil, nil, err
	}
	byQueue := map[string]gpu.QueueSpec{}
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		byQueue[s.Queue] = s
		names = append(names, s.Queue)
	}
	return &agent.Parallel{GPUs: &agent.DynamicGPUs{Allocator: alloc, Specs: byQueue, WorkerName: inst.WorkerName,
		Inventory: inv, Admission: adm}}, names, nil
}

// admission reads agent.gpu_admission (ours): enabled (false),
// min_free_memory_mb (0), allow_foreign_processes (false).
func admission(cfg *config.Config) (gpu.Admission, error) {
	var a gpu.Admission
	var err error
	const base = "agent.gpu_admission."
	if a.Enabled, err = cfg.Raw.Bool(base+"enabled", false); err != nil {
		return a, err
	}
	if a.MinFreeMB, err = cfg.Raw.Float(base+"min_free_memory_mb", 0); err != nil {
		return a, err
	}
	if a.MinFreeMB < 0 {
		return a, fmt.Errorf("%smin_free_memory_mb must not be negative", base)
	}
	if a.AllowForeign, err = cfg.Raw.Bool(base+"allow_foreign_processes", false); err != nil {
		return a, err
	}
	return a, nil
}
