package k8s

import (
	"context"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// Waiting reasons of an image that cannot be had. The permanent ones fail
// the task at once; the others once they last ImagePullTimeout.
var (
	permanentImageErrors = map[string]bool{"ErrImageNeverPull": true, "InvalidImageName": true}
	imageErrors          = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "RegistryUnavailable": true,
		"ErrImageNeverPull": true, "InvalidImageName": true}
)

// monitorLoop follows the pods: on every change, and every second for the
// timeouts and the aborts of pending tasks.
func (e *Executor) monitorLoop(ctx context.Context) {
	var lastAbortCheck time.Time
	for ctx.Err() == nil {
		now := e.cfg.Now()
		checkAborts := now.Sub(lastAbortCheck) >= min(e.cfg.PollInterval, time.Second)
		if checkAborts {
			lastAbortCheck = now
		}
		e.reconcile(ctx, checkAborts)
		sleep(ctx, e.wakeMonitor, time.Second)
	}
}

// reconcile looks at every pod of this executor once.
func (e *Executor) reconcile(ctx context.Context, checkAborts bool) {
	now := e.cfg.Now()
	pendingTasks := map[string]*corev1.Pod{}
	for _, obj := range e.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		task := p.Labels[LabelTask]
		if task == "" {
			continue
		}
		st := e.track(task, p.Labels[LabelQueue])
		if !e.sees(st, p) || p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodPending, "":
			e.pendingPod(ctx, p, st, now)
			pendingTasks[task] = p
		case corev1.PodRunning:
			if !st.running {
				st.running = true
				e.taskLog(ctx, task, "INFO", fmt.Sprintf("Kubernetes pod %s running on node %s", p.Name, p.Spec.NodeName))
			}
		case corev1.PodSucceeded, corev1.PodFailed:
			if !st.done {
				e.finishedPod(ctx, p, st)
				e.mu.Lock()
				st.done, st.doneAt = true, finishedAt(p, now)
				e.mu.Unlock()
			}
			if !st.deleting && now.Sub(st.doneAt) >= e.cfg.KeepFinished {
				st.deleting = true
				e.deleteTaskObjects(ctx, task, p.Name)
			}
		}
	}
	if e.jobs != nil {
		e.reconcileJobs(ctx, now)
	}
	e.handleGone(ctx)
	if checkAborts && len(pendingTasks) > 0 {
		e.abortPending(ctx, pendingTasks)
	}
}

// sees reports whether obj, in the informer's cache, is the object of the
// task's current run, and marks the run seen if so.
func (e *Executor) sees(st *taskState, obj metav1.Object) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !st.runsObject(obj) {
		return false
	}
	st.seen = true
	return true
}

// pendingPod writes a pending pod's reason to its task, and fails the task
// on an image that cannot be pulled or a pending timeout.
func (e *Executor) pendingPod(ctx context.Context, p *corev1.Pod, st *taskState, now time.Time) {
	task := p.Labels[LabelTask]
	if st.deleting {
		return
	}
	reason, message := pendingReason(p)
	text := reason
	if message != "" {
		text += ": " + message
	}
	if imageErrors[reason] {
		if st.pullErrorAt.IsZero() {
			st.pullErrorAt = now
		}
		if permanentImageErrors[reason] || now.Sub(st.pullErrorAt) >= e.cfg.ImagePullTimeout {
			e.failPod(ctx, task, p.Name, st, "K8S: image pull failed: "+text)
			return
		}
	} else {
		st.pullErrorAt = time.Time{}
	}
	if e.cfg.PendingTimeout > 0 && now.Sub(p.CreationTimestamp.Time) >= e.cfg.PendingTimeout {
		e.failPod(ctx, task, p.Name, st, fmt.Sprintf("K8S: pod pending for more than %s: %s", e.cfg.PendingTimeout, text))
		return
	}
	if text != st.pendingReason {
		st.pendingReason = text
		msg := "K8S pending: " + truncate(text, 300)
		e.taskLog(ctx, task, "INFO", "Kubernetes pod status: "+text)
		// The status message, only while the task waits (queued).
		if err := e.api.Call(ctx, "", "tasks.update", map[string]any{"task": task, "status_message": msg}, nil, apiclient.Default); err != nil && ctx.Err() == nil {
			e.cfg.Log.Debug("writing the pending reason", "task", task, "err", err)
		}
	}
}

// pendingReason says why a pod is pending: unschedulable, a waiting
// container's reason, or that it is starting.
func pendingReason(p *corev1.Pod) (reason, message string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return firstNonEmpty(c.Reason, "Unschedulable"), c.Message
		}
	}
	all := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range all {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
			return w.Reason, w.Message
		}
	}
	if p.Spec.NodeName == "" {
		return "Scheduling", "waiting for a node"
	}
	return "ContainerCreating", "starting on node " + p.Spec.NodeName
}

// podFailure describes why a pod failed ("" when it succeeded); strong is
// true for reasons the task's own exit code cannot tell (OOM kill,
// eviction, a lost node), which are added to the task's reason.
func podFailure(p *corev1.Pod) (reason string, strong bool) {
	if p.Status.Phase == corev1.PodSucceeded {
		return "", false
	}
	if p.Status.Reason != "" {
		return strings.TrimSuffix(p.Status.Reason+": "+p.Status.Message, ": "), true
	}
	all := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range all {
		t := cs.State.Terminated
		if t == nil {
			continue
		}
		if t.Reason == "OOMKilled" {
			return fmt.Sprintf("OOMKilled: container %s exceeded its memory limit (exit code %d)", cs.Name, t.ExitCode), true
		}
		if t.ExitCode != 0 {
			r := fmt.Sprintf("container %s exited with code %d", cs.Name, t.ExitCode)
			if t.Reason != "" && t.Reason != "Error" {
				r += " (" + t.Reason + ")"
			}
			return r, false
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return strings.TrimSuffix(c.Reason+": "+c.Message, ": "), true
		}
	}
	return "pod failed", false
}

// finishedPod settles a finished pod's task: the in-pod agent normally
// reported the final status; a task still running, or still waiting in
// the pending queue, failed with the pod's reason, and a failed one gets a
// reason its exit code could not give (OOMKilled, Evicted). A task queued
// anywhere else was queued again after the pod ended, and is left alone.
func (e *Executor) finishedPod(ctx context.Context, p *corev1.Pod, st *taskState) {
	task := p.Labels[LabelTask]
	reason, strong := podFailure(p)
	t, err := e.api.Task(ctx, task)
	if err != nil {
		if apiclient.IsNotFound(err) || api.ErrInvalidTaskID.Is(err) {
			return
		}
		e.cfg.Log.Warn("reading a finished pod's task", "task", task, "err", err)
		return
	}
	// Launched again while it was read: its status is the new run's.
	e.mu.Lock()
	current := e.state[task] == st && st.runsObject(p)
	e.mu.Unlock()
	if !current {
		return
	}
	switch t.Status {
	case api.StatusQueued, api.StatusInProgress:
		if t.Status == api.StatusQueued && t.StatusReason != pendingStatusReason {
			// Queued again, by hand, after this pod's run ended: the pod
			// is an earlier run's, and the new run replaces it.
			e.cfg.Log.Info("a finished pod of a task queued again; left to its new run", "task", task, "pod", p.Name)
			return
		}
		if reason == "" {
			reason = "the pod ended without the task reporting its end"
		}
		e.fail(ctx, task, fmt.Sprintf("K8S: pod %s %s", p.Name, reason))
	case api.StatusFailed:
		if strong && !strings.Contains(t.StatusReason, strings.SplitN(reason, ":", 2)[0]) {
			full := reason
			if t.StatusReason != "" {
				full += " (" + t.StatusReason + ")"
			}
			e.taskLog(ctx, task, "ERROR", "K8S: pod "+p.Name+" "+reason)
			if err := e.api.SetStatus(ctx, "tasks.failed", task, true, full, "Changed by clearml-agent "+e.cfg.WorkerID, apiclient.Final); err != nil {
				e.cfg.Log.Warn("adding the pod's reason to the task", "task", task, "err", err)
			}
		}
	}
}

// failPod deletes a pending pod and fails its task.
func (e *Executor) failPod(ctx context.Context, task, name string, st *taskState, reason string) {
	e.mu.Lock()
	st.deleting, st.done = true, true
	e.mu.Unlock()
	e.deleteTaskObjects(ctx, task, name)
	e.fail(ctx, task, reason)
}

// abortPending deletes the pods of pending tasks that were stopped,
// dequeued, reset or deleted.
func (e *Executor) abortPending(ctx context.Context, pods map[string]*corev1.Pod) {
	ids := make([]string, 0, len(pods))
	for id := range pods {
		ids = append(ids, id)
	}
	var resp struct {
		Tasks []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"tasks"`
	}
	if err := e.api.Call(ctx, "", "tasks.get_all", map[string]any{"id": ids, "only_fields": []string{"id", "status"}}, &resp, apiclient.Default); err != nil {
		if ctx.Err() == nil {
			e.cfg.Log.Warn("reading the status of pending tasks", "err", err)
		}
		return
	}
	found := map[string]string{}
	for _, t := range resp.Tasks {
		found[t.ID] = t.Status
	}
	for id, p := range pods {
		status, ok := found[id]
		// Only a task taken back (stopped, dequeued, reset) or deleted: one
		// already in progress has a running pod the cache has not seen yet.
		if ok && status != api.StatusStopped && status != api.StatusCreated {
			continue
		}
		st := e.track(id, p.Labels[LabelQueue])
		if st.deleting {
			continue
		}
		e.mu.Lock()
		st.deleting, st.done = true, true
		e.mu.Unlock()
		if !ok {
			status = "deleted"
		}
		e.cfg.Log.Info("task no longer queued while its pod is pending: deleting the pod", "task", id, "status", status)
		if ok {
			e.taskLog(ctx, id, "INFO", fmt.Sprintf("task %s while its pod was pending: pod %s deleted", status, p.Name))
		}
		e.deleteTaskObjects(ctx, id, p.Name)
	}
}

// deleteTaskObjects deletes a task's pod (or job and its pods) and its
// Secret.
func (e *Executor) deleteTaskObjects(ctx context.Context, task, podName string) {
	ns := e.cfg.Namespace
	name := e.cfg.ObjectName(task)
	var err error
	if e.cfg.Kind == KindJob {
		bg := metav1.DeletePropagationBackground
		err = e.kube.Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err == nil || apierrors.IsNotFound(err) {
			err = e.kube.Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: LabelTask + "=" + task})
		}
	} else {
		err = e.kube.Pods(ns).Delete(ctx, podName, metav1.DeleteOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		e.cfg.Log.Warn("deleting the task's pod", "task", task, "err", err)
	}
	if err := e.kube.Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		e.cfg.Log.Warn("deleting the task's secret", "task", task, "err", err)
	}
}

// podGone notes a pod deleted from the cluster (the informer's delete);
// the monitor loop handles it.
func (e *Executor) podGone(_ context.Context, obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[LabelTask] == "" {
		return
	}
	e.mu.Lock()
	e.gone = append(e.gone, p)
	e.mu.Unlock()
}

// handleGone fails the tasks whose pod was deleted by someone else (by
// hand, a lost node's eviction) before the task ended, and forgets the
// pods the executor deleted.
func (e *Executor) handleGone(ctx context.Context) {
	e.mu.Lock()
	gone := e.gone
	e.gone = nil
	var lost []*corev1.Pod
	for _, p := range gone {
		task := p.Labels[LabelTask]
		st, ok := e.state[task]
		if !ok || !st.runsObject(p) {
			continue // an earlier run's pod: the run now is another
		}
		delete(e.state, task)
		if !st.done && !st.deleting && e.cfg.Kind == KindPod {
			lost = append(lost, p)
		}
	}
	e.mu.Unlock()
	for _, p := range lost {
		task := p.Labels[LabelTask]
		status, _, err := e.api.TaskStatus(ctx, task)
		if err != nil || (status != api.StatusQueued && status != api.StatusInProgress) {
			continue
		}
		e.fail(ctx, task, fmt.Sprintf("K8S: pod %s was deleted before the task ended (deleted by hand, or its node was lost)", p.Name))
		e.kube.Secrets(e.cfg.Namespace).Delete(ctx, e.cfg.ObjectName(task), metav1.DeleteOptions{})
	}
}

// reconcileJobs deletes finished jobs after KeepFinished and notes jobs
// whose pods were never made.
func (e *Executor) reconcileJobs(ctx context.Context, now time.Time) {
	for _, obj := range e.jobs.GetStore().List() {
		j := obj.(*batchv1.Job)
		task := j.Labels[LabelTask]
		st := e.track(task, j.Labels[LabelQueue])
		if !e.sees(st, j) || !jobFinished(j) || j.DeletionTimestamp != nil || st.deleting {
			continue
		}
		if st.doneAt.IsZero() {
			st.doneAt = now
		}
		if now.Sub(st.doneAt) >= e.cfg.KeepFinished {
			st.deleting = true
			e.deleteTaskObjects(ctx, task, "")
		}
	}
}

// warningEvent sends a pod's warning events to its task's log, once each.
func (e *Executor) warningEvent(ctx context.Context, obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok || ev.InvolvedObject.Kind != "Pod" || ev.Type != corev1.EventTypeWarning {
		return
	}
	item, exists, err := e.pods.GetStore().GetByKey(ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name)
	if err != nil || !exists {
		return
	}
	task := item.(*corev1.Pod).Labels[LabelTask]
	if task == "" {
		return
	}
	last := ev.LastTimestamp.Time
	if ev.Series != nil {
		last = ev.Series.LastObservedTime.Time
	}
	if last.IsZero() {
		last = ev.EventTime.Time
	}
	if !last.IsZero() && last.Before(e.started) {
		return // logged by an earlier run of the executor
	}
	count := max(ev.Count, 1)
	if ev.Series != nil {
		count = max(count, ev.Series.Count)
	}
	e.mu.Lock()
	st, ok := e.state[task]
	if !ok {
		st = &taskState{queueID: item.(*corev1.Pod).Labels[LabelQueue], events: map[string]int32{}}
		e.state[task] = st
	}
	if st.events[string(ev.UID)] >= count {
		e.mu.Unlock()
		return
	}
	st.events[string(ev.UID)] = count
	e.mu.Unlock()
	msg := fmt.Sprintf("Kubernetes warning (pod %s): %s: %s", ev.InvolvedObject.Name, ev.Reason, ev.Message)
	if count > 1 {
		msg += fmt.Sprintf(" (x%d)", count)
	}
	e.taskLog(ctx, task, "WARNING", msg)
}

func finishedAt(p *corev1.Pod, now time.Time) time.Time {
	var last time.Time
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.FinishedAt.After(last) {
			last = t.FinishedAt.Time
		}
	}
	if last.IsZero() || last.After(now) {
		return now
	}
	return last
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
