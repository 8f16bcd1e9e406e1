package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletPod runs one bound pod's containers on docker.
type kubeletPod struct {
	n   *Node
	p   *corev1.Pod
	r   *podRun
	dir string
}

// errDeleted: the pod was deleted while it ran.
var errDeleted = fmt.Errorf("pod deleted")

// live runs the pod to its end, or until it is deleted.
func (k *kubeletPod) live(ctx context.Context) {
	p := k.p
	now := metav1.Now()
	waiting := func(cs []corev1.Container) []corev1.ContainerStatus {
		var out []corev1.ContainerStatus
		for _, c := range cs {
			out = append(out, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}})
		}
		return out
	}
	k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
		s.Phase, s.HostIP, s.PodIP, s.StartTime = corev1.PodPending, "127.0.0.1", "127.0.0.1", &now
		s.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		setCondition(s, corev1.PodScheduled, corev1.ConditionTrue, "", "")
		setCondition(s, corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized", "containers with incomplete status: [init]")
		setCondition(s, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", "containers with unready status")
		s.InitContainerStatuses, s.ContainerStatuses = waiting(p.Spec.InitContainers), waiting(p.Spec.Containers)
	})
	err := k.runAll(ctx)
	if err == errDeleted || ctx.Err() != nil {
		k.n.finalDelete(ctx, p)
		return
	}
	// Deleted after it ended: the object goes when asked.
	select {
	case <-k.r.deleted:
		k.n.finalDelete(ctx, p)
	case <-ctx.Done():
	}
}

// runAll runs the init containers one by one, then the main containers.
func (k *kubeletPod) runAll(ctx context.Context) error {
	p := k.p
	for i, c := range p.Spec.InitContainers {
		code, reason, err := k.runContainer(ctx, c, true, i)
		if err != nil {
			return err
		}
		if code != 0 {
			k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
				s.Phase = corev1.PodFailed
				setCondition(s, corev1.PodReady, corev1.ConditionFalse, "PodFailed", "")
				_ = reason
			})
			return nil
		}
	}
	k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
		setCondition(s, corev1.PodInitialized, corev1.ConditionTrue, "", "")
	})
	if len(p.Spec.Containers) != 1 {
		return fmt.Errorf("the test node runs pods of one container")
	}
	code, _, err := k.runContainer(ctx, p.Spec.Containers[0], false, 0)
	if err != nil {
		return err
	}
	k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodSucceeded
		if code != 0 {
			s.Phase = corev1.PodFailed
		}
		setCondition(s, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", "")
		setCondition(s, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", "")
	})
	return nil
}

// containerStatus edits the status of container i (init or main).
func containerStatus(s *corev1.PodStatus, init bool, i int, edit func(*corev1.ContainerStatus)) {
	list := &s.ContainerStatuses
	if init {
		list = &s.InitContainerStatuses
	}
	if i < len(*list) {
		edit(&(*list)[i])
	}
}

// runContainer runs one container to its end and returns its exit code
// and reason. The image must be present locally: otherwise the container
// waits in ErrImagePull/ImagePullBackOff (ErrImageNeverPull with
// imagePullPolicy Never) until the pod is deleted.
func (k *kubeletPod) runContainer(ctx context.Context, c corev1.Container, init bool, i int) (int, string, error) {
	p := k.p
	if err := k.waitImage(ctx, c, init, i); err != nil {
		return 0, "", err
	}
	env, err := k.env(ctx, c)
	for err != nil {
		msg := err.Error()
		k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
			containerStatus(s, init, i, func(cs *corev1.ContainerStatus) {
				cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: msg}}
			})
		})
		k.n.event(ctx, p, corev1.EventTypeWarning, "Failed", "Error: "+msg)
		select {
		case <-k.r.deleted:
			return 0, "", errDeleted
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(2 * time.Second): // the kubelet's retry of a container start
		}
		env, err = k.env(ctx, c)
	}
	name := fmt.Sprintf("k8s_%s_%s_%s_%s", c.Name, p.Name, p.Namespace, string(p.UID)[:8])
	args := []string{"run", "-d", "--name", name, "--label", dockerLabel + "=" + k.n.Name, "--network", "host"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		args = append(args, "--memory", strconv.FormatInt(q.Value(), 10), "--memory-swap", strconv.FormatInt(q.Value(), 10))
	}
	for _, m := range c.VolumeMounts {
		v := k.volume(m.Name)
		switch {
		case v == nil:
			continue
		case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory:
			size := ""
			if v.EmptyDir.SizeLimit != nil {
				size = ":size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			args = append(args, "--tmpfs", m.MountPath+size)
		case v.EmptyDir != nil:
			host := filepath.Join(k.dir, "volumes", m.Name)
			os.MkdirAll(host, 0o777)
			args = append(args, "-v", host+":"+m.MountPath)
		}
	}
	if c.WorkingDir != "" {
		args = append(args, "-w", c.WorkingDir)
	}
	cmd := append(append([]string{}, c.Command...), c.Args...)
	if len(c.Command) > 0 {
		args = append(args, "--entrypoint", c.Command[0], c.Image)
		cmd = cmd[1:]
	} else {
		args = append(args, c.Image)
	}
	args = append(args, cmd...)
	if _, err := docker(ctx, args...); err != nil {
		msg := err.Error()
		k.n.event(ctx, p, corev1.EventTypeWarning, "Failed", "Error: "+msg)
		k.terminated(ctx, init, i, 128, "StartError", msg, time.Now(), time.Now())
		return 128, "StartError", nil
	}
	defer docker(context.WithoutCancel(ctx), "rm", "-f", name)
	started := time.Now()
	k.n.event(ctx, p, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	k.n.setStatus(ctx, p, func(s *corev1.PodStatus) {
		containerStatus(s, init, i, func(cs *corev1.ContainerStatus) {
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started)}}
			cs.Ready, cs.Started = !init, ptr(true)
			cs.ContainerID = "docker://" + name
		})
		if !init {
			s.Phase = corev1.PodRunning
			setCondition(s, corev1.PodReady, corev1.ConditionTrue, "", "")
			setCondition(s, corev1.ContainersReady, corev1.ConditionTrue, "", "")
		}
	})
	exited := make(chan struct{})
	var code int
	var waitErr error
	go func() {
		defer close(exited)
		var out string
		out, waitErr = docker(context.WithoutCancel(ctx), "wait", name)
		code, _ = strconv.Atoi(strings.TrimSpace(out))
	}()
	select {
	case <-exited:
	case <-k.r.deleted:
		grace := int64(30)
		if p.Spec.TerminationGracePeriodSeconds != nil {
			grace = *p.Spec.TerminationGracePeriodSeconds
		}
		k.n.event(ctx, p, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Name)
		docker(context.WithoutCancel(ctx), "stop", "-t", strconv.FormatInt(grace, 10), name)
		<-exited
		return 0, "", errDeleted
	case <-ctx.Done():
		docker(context.WithoutCancel(ctx), "rm", "-f", name)
		<-exited
		return 0, "", ctx.Err()
	}
	if waitErr != nil {
		return 0, "", waitErr
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	var st struct {
		State struct {
			OOMKilled  bool
			StartedAt  time.Time
			FinishedAt time.Time
		}
	}
	finished := time.Now()
	if out, err := docker(ctx, "inspect", "--format", "{{json .}}", name); err == nil && json.Unmarshal([]byte(out), &st) == nil {
		if st.State.OOMKilled {
			reason = "OOMKilled"
		}
		if !st.State.StartedAt.IsZero() {
			started, finished = st.State.StartedAt, st.State.FinishedAt
		}
	}
	k.terminated(ctx, init, i, code, reason, "", started, finished)
	return code, reason, nil
}

func (k *kubeletPod) terminated(ctx context.Context, init bool, i, code int, reason, msg string, started, finished time.Time) {
	k.n.setStatus(ctx, k.p, func(s *corev1.PodStatus) {
		containerStatus(s, init, i, func(cs *corev1.ContainerStatus) {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, Message: msg,
				StartedAt: metav1.NewTime(started), FinishedAt: metav1.NewTime(finished)}}
			cs.Ready, cs.Started = false, ptr(false)
		})
	})
}

// waitImage waits until the container's image is present, reporting a
// missing one as the kubelet does, until the pod is deleted.
func (k *kubeletPod) waitImage(ctx context.Context, c corev1.Container, init bool, i int) error {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", c.Image); err == nil {
			return nil
		}
		reason, msg := "ErrImagePull", fmt.Sprintf("failed to pull and unpack image %q: pull access denied, repository does not exist or may require authorization", c.Image)
		switch {
		case c.ImagePullPolicy == corev1.PullNever:
			reason, msg = "ErrImageNeverPull", fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			k.n.event(ctx, k.p, corev1.EventTypeWarning, reason, msg)
		case attempt%2 == 1:
			reason, msg = "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", c.Image)
			k.n.event(ctx, k.p, corev1.EventTypeNormal, "BackOff", msg)
			k.n.event(ctx, k.p, corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		default:
			k.n.event(ctx, k.p, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
			k.n.event(ctx, k.p, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", c.Image, msg))
			k.n.event(ctx, k.p, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		}
		k.n.setStatus(ctx, k.p, func(s *corev1.PodStatus) {
			containerStatus(s, init, i, func(cs *corev1.ContainerStatus) {
				cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
			})
		})
		select {
		case <-k.r.deleted:
			return errDeleted
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff): // the kubelet's image pull back-off
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// env resolves the container's variables, secrets included, as the
// kubelet does when it starts a container.
func (k *kubeletPod) env(ctx context.Context, c corev1.Container) ([]string, error) {
	var out []string
	secret := func(name string) (map[string][]byte, error) {
		s, err := k.n.client.CoreV1().Secrets(k.p.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("secret %q not found", name)
		}
		return s.Data, nil
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		data, err := secret(ef.SecretRef.Name)
		if err != nil {
			if ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
				continue
			}
			return nil, err
		}
		for k, v := range data {
			out = append(out, ef.Prefix+k+"="+string(v))
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			data, err := secret(ref.Name)
			if err != nil {
				return nil, err
			}
			v, ok := data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, k.p.Namespace, ref.Name)
			}
			out = append(out, e.Name+"="+string(v))
		}
	}
	return out, nil
}

func (k *kubeletPod) volume(name string) *corev1.Volume {
	for i := range k.p.Spec.Volumes {
		if k.p.Spec.Volumes[i].Name == name {
			return &k.p.Spec.Volumes[i]
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
