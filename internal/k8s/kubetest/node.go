package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// Node is a test node: it schedules the pods of its namespaces onto
// itself (as kube-scheduler would, nodeSelector and GPU requests
// included) and runs them on the local Docker engine, reporting their
// status the way a kubelet does: phases, container states, OOMKilled on a
// memory limit, ErrImagePull/ImagePullBackOff (or ErrImageNeverPull) for an
// image that is not present, and Warning events. Images are local; nothing
// is ever pulled. Containers use the host network.
type Node struct {
	Name   string
	Labels map[string]string
	client kubernetes.Interface
	dir    string
	// namespaces the node serves (a test's own)
	namespaces map[string]bool

	mu   sync.Mutex
	pods map[types.UID]*podRun
	wg   sync.WaitGroup
	stop context.CancelFunc
}

type podRun struct {
	cancel  context.CancelFunc
	deleted chan struct{}
	once    sync.Once
}

// dockerLabel marks the node's containers.
const dockerLabel = "clearml-kubetest-node"

// StartNode registers a node named name with labels and runs the pods of
// the given namespaces until Stop.
func StartNode(client kubernetes.Interface, name string, labels map[string]string, dir string, namespaces ...string) (*Node, error) {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Name: name, Labels: labels, client: client, dir: dir, namespaces: map[string]bool{}, pods: map[types.UID]*podRun{}, stop: cancel}
	for _, ns := range namespaces {
		n.namespaces[ns] = true
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		cancel()
		return nil, fmt.Errorf("registering node %s: %w", name, err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { n.see(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { n.see(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				n.forget(p.UID)
			}
		},
	})
	factory.Start(ctx.Done())
	n.wg.Go(func() { <-ctx.Done(); factory.Shutdown() })
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, fmt.Errorf("node %s: listing pods failed", name)
	}
	return n, nil
}

// Stop ends the node's work and removes its containers.
func (n *Node) Stop() {
	n.stop()
	n.wg.Wait()
	n.client.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+dockerLabel+"="+n.Name).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// see starts a pod's run the first time the node sees it, and passes
// its deletion on.
func (n *Node) see(ctx context.Context, p *corev1.Pod) {
	if !n.namespaces[p.Namespace] || (p.Spec.NodeName != "" && p.Spec.NodeName != n.Name) {
		return
	}
	n.mu.Lock()
	r, ok := n.pods[p.UID]
	if !ok {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			n.mu.Unlock()
			if p.DeletionTimestamp != nil {
				n.finalDelete(ctx, p)
			}
			return
		}
		pctx, cancel := context.WithCancel(ctx)
		r = &podRun{cancel: cancel, deleted: make(chan struct{})}
		n.pods[p.UID] = r
		n.wg.Go(func() { n.run(pctx, p.DeepCopy(), r) })
	}
	n.mu.Unlock()
	if p.DeletionTimestamp != nil {
		r.once.Do(func() { close(r.deleted) })
	}
}

func (n *Node) forget(uid types.UID) {
	n.mu.Lock()
	if r, ok := n.pods[uid]; ok {
		r.cancel()
		r.once.Do(func() { close(r.deleted) })
	}
	n.mu.Unlock()
}

// run is one pod's life on the node.
func (n *Node) run(ctx context.Context, p *corev1.Pod, r *podRun) {
	defer func() {
		n.mu.Lock()
		delete(n.pods, p.UID)
		n.mu.Unlock()
	}()
	if p.Spec.NodeName == "" {
		if why := n.unschedulable(p); why != "" {
			n.setStatus(ctx, p, func(s *corev1.PodStatus) {
				s.Phase = corev1.PodPending
				setCondition(s, corev1.PodScheduled, corev1.ConditionFalse, corev1.PodReasonUnschedulable, why)
			})
			n.event(ctx, p, corev1.EventTypeWarning, "FailedScheduling", why)
			select { // waits for its deletion: a node selector does not change
			case <-r.deleted:
				n.finalDelete(ctx, p)
			case <-ctx.Done():
			}
			return
		}
		err := n.client.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target: corev1.ObjectReference{Kind: "Node", Name: n.Name}}, metav1.CreateOptions{})
		if err != nil {
			return
		}
		p.Spec.NodeName = n.Name
	}
	k := &kubeletPod{n: n, p: p, r: r, dir: filepath.Join(n.dir, string(p.UID))}
	os.MkdirAll(k.dir, 0o755)
	defer os.RemoveAll(k.dir)
	k.live(ctx)
}

// unschedulable says why the pod cannot go on this node, as the
// scheduler words it ("" when it fits).
func (n *Node) unschedulable(p *corev1.Pod) string {
	for k, v := range p.Spec.NodeSelector {
		if n.Labels[k] != v {
			return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
		}
	}
	for _, c := range p.Spec.Containers {
		for _, list := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
			if q, ok := list["nvidia.com/gpu"]; ok && !q.IsZero() {
				return "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
			}
		}
	}
	return ""
}

// setStatus updates the pod's status, retrying on conflicts.
func (n *Node) setStatus(ctx context.Context, p *corev1.Pod, mutate func(*corev1.PodStatus)) {
	retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.UID {
			return nil
		}
		mutate(&cur.Status)
		_, err = n.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// event records an event on the pod, from the kubelet.
func (n *Node) event(ctx context.Context, p *corev1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: p.Name + ".", Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, APIVersion: "v1"},
		Reason:         reason, Message: msg, Type: typ, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kubelet", Host: n.Name},
	}
	n.client.CoreV1().Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{})
}

// finalDelete removes a deleted pod's object once its containers are gone
// (the kubelet's last word: grace period 0).
func (n *Node) finalDelete(ctx context.Context, p *corev1.Pod) {
	zero := int64(0)
	n.client.CoreV1().Pods(p.Namespace).Delete(context.WithoutCancel(ctx), p.Name,
		metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, st corev1.ConditionStatus, reason, msg string) {
	now := metav1.Now()
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status != st {
				s.Conditions[i].LastTransitionTime = now
			}
			s.Conditions[i].Status, s.Conditions[i].Reason, s.Conditions[i].Message = st, reason, msg
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: st, Reason: reason, Message: msg, LastTransitionTime: now})
}

// docker runs the docker CLI.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}
