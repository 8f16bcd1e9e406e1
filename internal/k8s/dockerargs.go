package k8s

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/redact"
)

// GPUResource is the extended resource GPUs are asked for by.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// PodArgs is what a task's docker arguments become in its pod.
type PodArgs struct {
	// Env are plain variables; SecretEnv those whose names say they hold a
	// secret (they go into the task's Secret, never into the pod spec).
	Env, SecretEnv []corev1.EnvVar
	Limits         corev1.ResourceList
	Requests       corev1.ResourceList
	// ShmSize sizes a memory-backed /dev/shm (nil: none).
	ShmSize *resource.Quantity
	// Notes name the arguments that have no pod equivalent, for the task
	// log.
	Notes []string
}

// MapDockerArgs turns merged docker arguments into pod fields: -e, --shm-size,
// --memory, --memory-reservation, --cpus and --gpus. Every other argument
// is named in a note. A value Kubernetes cannot take is an error (the task
// fails with it).
func MapDockerArgs(args []docker.Arg) (PodArgs, error) {
	p := PodArgs{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
	envAt := map[string]int{}
	for _, a := range args {
		switch a.Name {
		case "env":
			name, val, ok := strings.Cut(a.Value, "=")
			if !ok {
				p.Notes = append(p.Notes, fmt.Sprintf("docker argument --env=%s passes a host variable: no pod equivalent, ignored", name))
				continue
			}
			v := corev1.EnvVar{Name: name, Value: val}
			if redact.SecretName(name) {
				p.SecretEnv = append(p.SecretEnv, v)
				continue
			}
			if i, seen := envAt[name]; seen {
				p.Env[i] = v // the later one wins, as on docker's command line
				continue
			}
			envAt[name] = len(p.Env)
			p.Env = append(p.Env, v)
		case "shm-size":
			q, err := dockerBytes(a.Value)
			if err != nil {
				return p, fmt.Errorf("docker argument --shm-size=%s: %w", a.Value, err)
			}
			p.ShmSize = &q
		case "memory":
			q, err := dockerBytes(a.Value)
			if err != nil {
				return p, fmt.Errorf("docker argument --memory=%s: %w", a.Value, err)
			}
			p.Limits[corev1.ResourceMemory] = q
		case "memory-reservation":
			q, err := dockerBytes(a.Value)
			if err != nil {
				return p, fmt.Errorf("docker argument --memory-reservation=%s: %w", a.Value, err)
			}
			p.Requests[corev1.ResourceMemory] = q
		case "cpus":
			f, err := strconv.ParseFloat(a.Value, 64)
			if err != nil || f <= 0 {
				return p, fmt.Errorf("docker argument --cpus=%s: expected a positive number of CPUs", a.Value)
			}
			p.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(f*1000+0.5), resource.DecimalSI)
		case "gpus":
			n, err := gpuCount(a.Value)
			if err != nil {
				p.Notes = append(p.Notes, fmt.Sprintf("docker argument %s: %v; GPUs come from the queue's pod template", a, err))
				continue
			}
			p.Limits[GPUResource] = *resource.NewQuantity(int64(n), resource.DecimalSI)
		default:
			p.Notes = append(p.Notes, fmt.Sprintf("docker argument %s has no pod equivalent: ignored (use the queue's pod template)", a))
		}
	}
	return p, nil
}

// gpuCount reads --gpus N, --gpus count=N or --gpus device=0,1 as a GPU
// count; "all" has no meaning on a cluster.
func gpuCount(v string) (int, error) {
	v = strings.Trim(v, `"'`)
	for _, part := range strings.Split(v, ",") {
		if c, ok := strings.CutPrefix(part, "count="); ok {
			v = c
		}
	}
	if d, ok := strings.CutPrefix(v, "device="); ok {
		return len(strings.Split(d, ",")), nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n, nil
	}
	return 0, fmt.Errorf("a GPU count cannot be read from %q", v)
}

// dockerBytes reads docker's byte sizes (512m, 2g, 1024, 1.5g) as a
// quantity.
func dockerBytes(s string) (resource.Quantity, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'b':
			t = t[:n-1]
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return resource.Quantity{}, fmt.Errorf("expected a size such as 512m or 2g")
	}
	return *resource.NewQuantity(int64(f*float64(mult)), resource.BinarySI), nil
}
