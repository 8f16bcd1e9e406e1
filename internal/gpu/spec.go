// Package gpu shares a machine's GPUs among the tasks of one daemon
// (--dynamic-gpus): it parses the per-queue GPU specs and the device list,
// allocates devices (whole GPUs, opportunistic ranges, fractions of a GPU,
// MIG slices) without ever giving one device to two tasks beyond its
// capacity, persists the allocation so a restarted daemon does not
// double-allocate, reads other workers' GPUs the way upstream encodes them
// in worker ids, and checks with the GPU inventory (nvidia-smi) that a
// device is really free before a task is taken.
package gpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// QueueSpec is one `--queue name=spec` of --dynamic-gpus: how many GPUs a
// task from the queue gets. Max >= 1: whole GPUs, at least Min (an
// opportunistic range takes as many free ones as there are up to Max);
// Max < 1: a fraction of one GPU.
type QueueSpec struct {
	Queue    string
	Min, Max float64
}

// Whole reports whether the spec asks for whole GPUs.
func (s QueueSpec) Whole() bool { return s.Max >= 1 }

func (s QueueSpec) String() string {
	if s.Min == s.Max {
		return s.Queue + "=" + fmtNum(s.Max)
	}
	return s.Queue + "=" + fmtNum(s.Min) + "-" + fmtNum(s.Max)
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// ParseQueueSpecs reads `name=max` or `name=min-max` (an empty min means
// 1), split at the last '='. The errors are upstream's.
func ParseQueueSpecs(values []string) ([]QueueSpec, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("using --dynamic-gpus, --queue [...] must list queues, in format <queue_name>=<num_gpus>")
	}
	out := make([]QueueSpec, 0, len(values))
	seen := map[string]bool{}
	for _, v := range values {
		i := strings.LastIndexByte(v, '=')
		if i <= 0 {
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s], queue must be in format <queue_name>=<num_gpus>", v)
		}
		name, spec := v[:i], strings.TrimSpace(v[i+1:])
		if seen[name] {
			return nil, fmt.Errorf("using --dynamic-gpus, queue %q is listed twice", name)
		}
		seen[name] = true
		lo, hi, isRange := strings.Cut(spec, "-")
		if !isRange {
			hi, lo = spec, spec
		} else if strings.TrimSpace(lo) == "" {
			lo = "1"
		}
		min, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		max, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if err1 != nil || err2 != nil || spec == "" {
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: %q is not a number of GPUs (use N, MIN-MAX or a fraction such as 0.5)", v, spec)
		}
		switch {
		case min <= 0 || max <= 0:
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: Parsing min/max number of gpus <= 0 is not allowed", v)
		case min > max:
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: the minimum number of GPUs is larger than the maximum", v)
		case max > 1 && max != float64(int(max)) || min > 1 && min != float64(int(min)):
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: fractional gpu cannot be > 1", v)
		case max < 1 && isRange:
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: a fraction of a GPU cannot be a range", v)
		case min < 1 && max >= 1:
			return nil, fmt.Errorf("using --dynamic-gpus, --queue [%s]: a range of whole GPUs starts at 1 or more", v)
		}
		out = append(out, QueueSpec{Queue: name, Min: min, Max: max})
	}
	return out, nil
}

// ParseDevices reads the --gpus of --dynamic-gpus: a range "0-3"
// (inclusive) or a list "0,1,2,3"; list items may be MIG slices "0:1"
// (written "0.1" here). The error is upstream's.
func ParseDevices(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("--gpus must be provided, in one of two ways: comma separated '0,1,2,3' or range '0-3' (got %q)", s)
	if s == "" || s == "all" || s == "none" || strings.Contains(s, ",") && strings.Contains(s, "-") || strings.Count(s, "-") > 1 {
		return nil, bad
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, bad
		}
		var out []string
		for i := a; i <= b; i++ {
			out = append(out, strconv.Itoa(i))
		}
		return out, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.ReplaceAll(strings.TrimSpace(item), ":", ".")
		if f, err := strconv.ParseFloat(item, 64); err != nil || f < 0 || strings.Count(item, ".") > 1 {
			return nil, bad
		}
		if seen[item] {
			return nil, fmt.Errorf("--gpus lists device %s twice", item)
		}
		seen[item] = true
		out = append(out, item)
	}
	return out, nil
}

// visibleItem is one device of NVIDIA_VISIBLE_DEVICES: an index, a MIG
// slice (0:1, written 0.1 in worker ids), or a GPU or MIG UUID.
var visibleItem = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+([:.]\d+)?|(GPU|MIG)-[0-9A-Za-z/-]+)$`) })

// CheckVisible checks the --gpus of a daemon without --dynamic-gpus: all,
// none, or a comma-separated list of devices (0,1; 0:1; GPU-<uuid>).
func CheckVisible(s string) error {
	t := strings.TrimSpace(s)
	if t == "all" || t == "none" {
		return nil
	}
	for _, item := range strings.Split(t, ",") {
		if !visibleItem().MatchString(strings.TrimSpace(item)) {
			hint := "use all, a device (0), a list (0,1), a MIG slice (0:1) or GPU UUIDs"
			if strings.Contains(item, "-") && !strings.Contains(item, "GPU-") && !strings.Contains(item, "MIG-") {
				hint = "a range such as 0-3 is for --dynamic-gpus; list the devices instead (0,1,2,3)"
			}
			return fmt.Errorf("--gpus: %q is not a GPU list: %s", s, hint)
		}
	}
	return nil
}
