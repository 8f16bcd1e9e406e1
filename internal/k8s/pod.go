package k8s

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// LoadTemplate reads a pod template: a Pod (kind Pod, or just metadata and
// spec) or a PodTemplate. Unknown fields are errors, so that a typo does
// not silently drop a setting.
func LoadTemplate(data []byte) (*corev1.Pod, error) {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("reading the pod template: %w", err)
	}
	switch head.Kind {
	case "", "Pod":
		var p corev1.Pod
		if err := yaml.UnmarshalStrict(data, &p); err != nil {
			return nil, fmt.Errorf("reading the pod template: %w", err)
		}
		return &p, nil
	case "PodTemplate":
		var t corev1.PodTemplate
		if err := yaml.UnmarshalStrict(data, &t); err != nil {
			return nil, fmt.Errorf("reading the pod template: %w", err)
		}
		return &corev1.Pod{ObjectMeta: t.Template.ObjectMeta, Spec: t.Template.Spec}, nil
	default:
		return nil, fmt.Errorf("reading the pod template: kind %q, expected Pod or PodTemplate", head.Kind)
	}
}

// ApplyOverrides merges overrides (YAML, a partial Pod) over a template as
// `kubectl patch --type strategic` would: containers merge by name, maps
// merge, other fields are replaced.
func ApplyOverrides(tpl *corev1.Pod, overrides []byte) (*corev1.Pod, error) {
	patch, err := yaml.YAMLToJSON(overrides)
	if err != nil {
		return nil, fmt.Errorf("reading the overrides: %w", err)
	}
	if tpl == nil {
		tpl = &corev1.Pod{}
	}
	orig, err := json.Marshal(tpl)
	if err != nil {
		return nil, err
	}
	merged, err := strategicpatch.StrategicMergePatch(orig, patch, corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("applying the overrides: %w", err)
	}
	var out corev1.Pod
	if err := json.Unmarshal(merged, &out); err != nil {
		return nil, fmt.Errorf("applying the overrides: %w", err)
	}
	return &out, nil
}

// podInput is one task's pod, before it is made.
type podInput struct {
	TaskID, QueueID, QueueName string
	Image                      string
	Args                       PodArgs
	// SetupScript is the container set-up script ("" for none).
	SetupScript string
	// TaskSecret is the task's own Secret ("" when it has none): the
	// owner's token and the secret-named variables.
	TaskSecret string
}

// buildPod makes a task's pod from its queue's template. The template's
// first container is the task's (its image, command and arguments are the
// executor's); an init container copies this binary into a shared volume.
func (c *Config) buildPod(tpl *corev1.Pod, in podInput) (*corev1.Pod, []string) {
	var notes []string
	pod := &corev1.Pod{}
	if tpl != nil {
		pod = tpl.DeepCopy()
	}
	name := c.ObjectName(in.TaskID)
	pod.TypeMeta = metav1.TypeMeta{}
	pod.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: c.Namespace, Labels: pod.Labels, Annotations: pod.Annotations}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range c.labels(in.TaskID, in.QueueID, in.QueueName) {
		pod.Labels[k] = v
	}
	pod.Annotations[AnnoWorker] = c.WorkerID
	pod.Annotations[AnnoQueueName] = in.QueueName
	pod.Status = corev1.PodStatus{}
	spec := &pod.Spec
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.NodeName = ""
	if len(spec.Containers) == 0 {
		spec.Containers = []corev1.Container{{}}
	}
	main := &spec.Containers[0]
	if main.Name == "" {
		main.Name = defaultContainerName
	}
	main.Image = in.Image
	if c.ForcePull {
		main.ImagePullPolicy = corev1.PullAlways
	}
	self := mountDir + "/clearml-agent"
	main.Command = []string{self, "container-run"}
	if in.SetupScript != "" {
		main.Command = append(main.Command, "--init", mountDir+"/setup.sh")
	}
	main.Command = append(main.Command, "--", self, "execute", "--full-monitoring", "--require-queue")
	main.Command = append(append(main.Command, c.ExecuteArgs...), "--id", in.TaskID)
	main.Args = nil
	env := []corev1.EnvVar{
		{Name: "CLEARML_API_HOST", Value: c.APIServer},
		{Name: "CLEARML_WORKER_ID", Value: c.WorkerID + ":" + in.TaskID},
		{Name: "CLEARML_TASK_ID", Value: in.TaskID},
		{Name: "CLEARML_DOCKER_IMAGE", Value: in.Image},
		{Name: "CLEARML_AGENT_IN_CONTAINER", Value: "1"},
	}
	if c.WebServer != "" {
		env = append(env, corev1.EnvVar{Name: "CLEARML_WEB_HOST", Value: c.WebServer})
	}
	if c.FilesServer != "" {
		env = append(env, corev1.EnvVar{Name: "CLEARML_FILES_HOST", Value: c.FilesServer})
	}
	env = append(env, in.Args.Env...)
	if !c.UseOwnerToken {
		// The credentials: the whole Secret as variables, by reference.
		main.EnvFrom = append(main.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.SecretName}}})
	}
	if in.TaskSecret != "" {
		main.EnvFrom = append(main.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: in.TaskSecret}}})
	}
	main.Env = mergeEnv(main.Env, env)
	notes = append(notes, applyResources(&main.Resources, in.Args)...)
	mount := corev1.VolumeMount{Name: "clearml-agent", MountPath: mountDir}
	main.VolumeMounts = append(main.VolumeMounts, mount)
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "clearml-agent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	if in.Args.ShmSize != nil {
		size := *in.Args.ShmSize
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "clearml-shm", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}})
		main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: "clearml-shm", MountPath: "/dev/shm"})
	}
	initC := corev1.Container{
		Name: initContainerName, Image: c.AgentImage, ImagePullPolicy: c.AgentPullPolicy,
		Command:      []string{c.AgentBinary, "k8s-install", mountDir},
		VolumeMounts: []corev1.VolumeMount{mount},
	}
	if in.SetupScript != "" {
		initC.Env = []corev1.EnvVar{{Name: "CLEARML_K8S_SETUP_SCRIPT", Value: in.SetupScript}}
	}
	spec.InitContainers = append([]corev1.Container{initC}, spec.InitContainers...)
	return pod, notes
}

// labels are the labels of a task's pod (and job).
func (c *Config) labels(taskID, queueID, queueName string) map[string]string {
	k, v, _ := strings.Cut(c.LimitLabel, "=")
	return map[string]string{k: v, LabelTask: taskID, LabelQueue: labelValue(queueID), LabelQueueName: labelValue(queueName)}
}

// mergeEnv adds env to base; a name in both takes env's value.
func mergeEnv(base, env []corev1.EnvVar) []corev1.EnvVar {
	at := map[string]int{}
	out := append([]corev1.EnvVar(nil), base...)
	for i, e := range out {
		at[e.Name] = i
	}
	for _, e := range env {
		if i, ok := at[e.Name]; ok {
			out[i] = e
			continue
		}
		at[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

// applyResources adds the task's resources to the container's. The
// template's limits are the administrator's cap: a task asking for more
// gets the cap, and a note says so.
func applyResources(r *corev1.ResourceRequirements, a PodArgs) []string {
	var notes []string
	if r.Limits == nil {
		r.Limits = corev1.ResourceList{}
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	names := make([]string, 0, len(a.Limits))
	for n := range a.Limits {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		name := corev1.ResourceName(n)
		want := a.Limits[name]
		if cap, ok := r.Limits[name]; ok && want.Cmp(cap) > 0 {
			notes = append(notes, fmt.Sprintf("the task asks for %s %s, more than the pod template's limit %s: using the limit", name, want.String(), cap.String()))
			continue
		}
		r.Limits[name] = want
		if req, ok := r.Requests[name]; ok && req.Cmp(want) > 0 {
			r.Requests[name] = want // a request may not exceed its limit
		}
		if name == GPUResource {
			r.Requests[name] = want // extended resources: request = limit
		}
	}
	for name, want := range a.Requests {
		if lim, ok := r.Limits[name]; ok && want.Cmp(lim) > 0 {
			want = lim
		}
		r.Requests[name] = want
	}
	if len(r.Limits) == 0 {
		r.Limits = nil
	}
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	return notes
}

// wrapJob makes the batch/v1 Job that runs pod (CLEARML_K8S_GLUE_KIND=job):
// no retries, the pod's labels on the job and its pods.
func wrapJob(pod *corev1.Pod) *batchv1.Job {
	zero := int32(0)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, Annotations: pod.Annotations},
		Spec: batchv1.JobSpec{
			BackoffLimit: &zero,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: pod.Labels, Annotations: pod.Annotations},
				Spec:       pod.Spec,
			},
		},
	}
}

// taskSecretData is what a task's own Secret holds.
func taskSecretData(ownerToken string, a PodArgs) map[string][]byte {
	data := map[string][]byte{}
	if ownerToken != "" {
		data["CLEARML_AUTH_TOKEN"] = []byte(ownerToken)
	}
	for _, e := range a.SecretEnv {
		data[e.Name] = []byte(e.Value)
	}
	return data
}
