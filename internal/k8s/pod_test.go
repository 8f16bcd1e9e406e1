package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/goclearml/agent/internal/docker"
)

func TestMapDockerArgs(t *testing.T) {
	t.Parallel()
	parse := func(s ...string) []docker.Arg {
		a, err := docker.ParseArgs(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	p, err := MapDockerArgs(parse("-e", "A=1", "-e", "A=2", "-e", "HF_TOKEN=abcd", "--shm-size", "1g", "--memory=512m",
		"--cpus", "1.5", "--gpus", "2", "-v", "/data:/data", "--ipc=host", "-e", "FROM_HOST"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Env) != 1 || p.Env[0].Value != "2" || len(p.SecretEnv) != 1 || p.SecretEnv[0].Name != "HF_TOKEN" {
		t.Fatalf("env %v secret env %v", p.Env, p.SecretEnv)
	}
	mem, cpu, gpu := p.Limits[corev1.ResourceMemory], p.Limits[corev1.ResourceCPU], p.Limits[GPUResource]
	if mem.Value() != 512<<20 || cpu.MilliValue() != 1500 || gpu.Value() != 2 || p.ShmSize.Value() != 1<<30 {
		t.Fatalf("limits %v shm %v", p.Limits, p.ShmSize)
	}
	notes := strings.Join(p.Notes, "\n")
	for _, want := range []string{"--volume=/data:/data has no pod equivalent", "--ipc=host has no pod equivalent", "--env=FROM_HOST passes a host variable"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	for _, bad := range [][]string{{"--memory", "lots"}, {"--cpus", "-1"}, {"--shm-size", "x"}} {
		if _, err := MapDockerArgs(parse(bad...)); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if p, _ := MapDockerArgs(parse("--gpus", "device=0,1")); p.Limits.Name(GPUResource, resource.DecimalSI).Value() != 2 {
		t.Errorf("device=0,1: %v", p.Limits)
	}
	if p, _ := MapDockerArgs(parse("--gpus", "all")); len(p.Notes) != 1 || len(p.Limits) != 0 {
		t.Errorf("--gpus all: %v %v", p.Notes, p.Limits)
	}
}

func testConfig(t *testing.T) *Config {
	t.Helper()
	c := &Config{Namespace: "ns", WorkerID: "exec-1", AgentImage: "reg/agent:1", APIServer: "http://api:8008", Queues: []string{"q"}}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildPod(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	tpl, err := LoadTemplate([]byte(`
metadata:
  labels: {team: vision}
spec:
  nodeSelector: {pool: gpu}
  containers:
  - name: main
    env: [{name: KEEP, value: "1"}]
    resources:
      limits: {memory: 1Gi, cpu: "2"}
      requests: {memory: 1Gi}
`))
	if err != nil {
		t.Fatal(err)
	}
	args := PodArgs{Env: []corev1.EnvVar{{Name: "X", Value: "y"}}, Limits: corev1.ResourceList{
		corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourceCPU: resource.MustParse("1"), GPUResource: resource.MustParse("1")}}
	q := resource.MustParse("64Mi")
	args.ShmSize = &q
	pod, notes := c.buildPod(tpl, podInput{TaskID: "abc123", QueueID: "qid", QueueName: "my queue", Image: "python:3.11", Args: args,
		SetupScript: "echo hi", TaskSecret: "clearml-id-abc123"})
	if pod.Name != "clearml-id-abc123" || pod.Namespace != "ns" || pod.Labels["team"] != "vision" || pod.Labels[LabelTask] != "abc123" ||
		pod.Labels[LabelQueueName] != "my_queue" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever || pod.Spec.NodeSelector["pool"] != "gpu" {
		t.Fatalf("pod meta/spec: %+v %+v", pod.ObjectMeta, pod.Spec)
	}
	if k, v, _ := strings.Cut(c.LimitLabel, "="); pod.Labels[k] != v {
		t.Fatalf("no limit label %s: %v", c.LimitLabel, pod.Labels)
	}
	main := pod.Spec.Containers[0]
	cmd := strings.Join(main.Command, " ")
	if main.Image != "python:3.11" || !strings.Contains(cmd, "container-run --init /opt/clearml-agent/setup.sh -- /opt/clearml-agent/clearml-agent execute --full-monitoring --require-queue --id abc123") {
		t.Fatalf("main container: %s %s", main.Image, cmd)
	}
	mem, cpu := main.Resources.Limits[corev1.ResourceMemory], main.Resources.Limits[corev1.ResourceCPU]
	if mem.String() != "1Gi" || cpu.String() != "1" || len(notes) != 1 || !strings.Contains(notes[0], "more than the pod template's limit") {
		t.Fatalf("resources %v notes %v", main.Resources, notes)
	}
	if g := main.Resources.Requests[GPUResource]; g.Value() != 1 {
		t.Fatalf("gpu request %v", main.Resources.Requests)
	}
	env := map[string]string{}
	for _, e := range main.Env {
		env[e.Name] = e.Value
	}
	if env["KEEP"] != "1" || env["X"] != "y" || env["CLEARML_WORKER_ID"] != "exec-1:abc123" || env["CLEARML_API_HOST"] != "http://api:8008" {
		t.Fatalf("env %v", env)
	}
	if len(main.EnvFrom) != 2 || main.EnvFrom[0].SecretRef.Name != DefaultSecretName || main.EnvFrom[1].SecretRef.Name != "clearml-id-abc123" {
		t.Fatalf("envFrom %+v", main.EnvFrom)
	}
	init := pod.Spec.InitContainers[0]
	if init.Image != "reg/agent:1" || strings.Join(init.Command, " ") != "/usr/local/bin/clearml-agent k8s-install /opt/clearml-agent" ||
		init.Env[0].Value != "echo hi" {
		t.Fatalf("init container %+v", init)
	}
	if len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[1].EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Fatalf("volumes %+v", pod.Spec.Volumes)
	}
	// The template is not changed.
	if len(tpl.Spec.Containers[0].Env) != 1 || tpl.Name != "" {
		t.Fatalf("template modified: %+v", tpl)
	}
	// The job kind wraps the same pod.
	job := wrapJob(pod)
	if *job.Spec.BackoffLimit != 0 || job.Spec.Template.Labels[LabelTask] != "abc123" || job.Name != pod.Name {
		t.Fatalf("job %+v", job)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"spec: {containerz: []}", "kind: Deployment", "spec: [1", "metadata: {labels: 3}"} {
		if _, err := LoadTemplate([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	tpl, err := LoadTemplate([]byte("kind: PodTemplate\napiVersion: v1\ntemplate:\n  spec:\n    containers: [{name: c, image: x}]\n"))
	if err != nil || tpl.Spec.Containers[0].Name != "c" {
		t.Fatalf("PodTemplate: %v %+v", err, tpl)
	}
	out, err := ApplyOverrides(tpl, []byte("spec:\n  containers:\n  - name: c\n    resources: {limits: {memory: 2Gi}}\n  priorityClassName: high\n"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Containers[0].Image != "x" || out.Spec.PriorityClassName != "high" {
		t.Fatalf("overrides: %+v", out.Spec)
	}
	if m := out.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; m.String() != "2Gi" {
		t.Fatalf("overrides resources: %v", out.Spec.Containers[0].Resources)
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{Namespace: "Bad_NS", AgentImage: "a", APIServer: "x"},
		{PodNamePrefix: "UPPER-", AgentImage: "a", APIServer: "x"},
		{PodNamePrefix: strings.Repeat("a", 40), AgentImage: "a", APIServer: "x"},
		{LimitLabel: "novalue", AgentImage: "a", APIServer: "x"},
		{AgentImage: "", APIServer: "x"},
		{AgentImage: "a", APIServer: ""},
		{Kind: "deployment", AgentImage: "a", APIServer: "x"},
		{MaxPods: -1, AgentImage: "a", APIServer: "x"},
	} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestPodReasons(t *testing.T) {
	t.Parallel()
	term := func(reason string, code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}
	}
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		want   string
		strong bool
	}{
		{"oom", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{term("OOMKilled", 137)}}, "OOMKilled: container main exceeded its memory limit (exit code 137)", true},
		{"exit", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{term("Error", 3)}}, "container main exited with code 3", false},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."}, "Evicted: The node was low on resource: memory.", true},
		{"node lost", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "NodeLost"}, "NodeLost", true},
		{"disruption", corev1.PodStatus{Phase: corev1.PodFailed, Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager"}}}, "DeletionByTaintManager", true},
		{"ok", corev1.PodStatus{Phase: corev1.PodSucceeded}, "", false},
	} {
		got, strong := podFailure(&corev1.Pod{Status: tc.status})
		if got != tc.want || strong != tc.strong {
			t.Errorf("%s: %q %v, want %q %v", tc.name, got, strong, tc.want, tc.strong)
		}
	}
	pending := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
		ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off"}}}}}}
	if r, m := pendingReason(pending); r != "ImagePullBackOff" || m != "Back-off" {
		t.Errorf("pending: %s %s", r, m)
	}
	unsched := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
		Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}}
	if r, m := pendingReason(unsched); r != "Unschedulable" || m != "0/3 nodes are available" {
		t.Errorf("unschedulable: %s %s", r, m)
	}
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CLEARML_K8S_SETUP_SCRIPT", "export A=1\n")
	if err := Install(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "clearml-agent"))
	if err != nil || st.Mode().Perm()&0o111 == 0 || st.Size() == 0 {
		t.Fatalf("installed binary: %v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "setup.sh")); err != nil || string(b) != "export A=1\n" {
		t.Fatalf("setup script: %q %v", b, err)
	}
	if err := Install(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("installing into a missing folder: no error")
	}
}
