package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/docker"
)

// runtimeMark is the task runtime property that says which executor moved
// the task into the pending queue: a restarted executor launches the pods
// of its own tasks that it had not created yet.
const runtimeMark = "_k8s_executor"

// launchLoop pops tasks while there is room: queues in priority order,
// starting again at the first after every task. A queue at its limit is
// not popped, so its first task stays at the head.
func (e *Executor) launchLoop(ctx context.Context) error {
	for ctx.Err() == nil {
		if e.launchOne(ctx) {
			continue
		}
		sleep(ctx, e.wakeLaunch, e.cfg.PollInterval)
	}
	return ctx.Err()
}

// activeCounts counts this executor's unfinished pods (or jobs), in all
// and per queue id label.
func (e *Executor) activeCounts() (int, map[string]int) {
	active := map[string]string{} // task -> queue label
	for _, obj := range e.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
			active[p.Labels[LabelTask]] = p.Labels[LabelQueue]
		}
	}
	if e.jobs != nil {
		for _, obj := range e.jobs.GetStore().List() {
			j := obj.(*batchv1.Job)
			if !jobFinished(j) && j.DeletionTimestamp == nil {
				active[j.Labels[LabelTask]] = j.Labels[LabelQueue]
			}
		}
	}
	e.mu.Lock()
	for task, st := range e.state {
		if !st.seen && !st.done {
			active[task] = labelValue(st.queueID) // created, not in the cache yet
		}
	}
	e.mu.Unlock()
	per := map[string]int{}
	for _, q := range active {
		per[q]++
	}
	return len(active), per
}

// launchOne pops and launches at most one task; it reports whether it
// did.
func (e *Executor) launchOne(ctx context.Context) bool {
	total, per := e.activeCounts()
	if e.cfg.MaxPods > 0 && total >= e.cfg.MaxPods {
		return false
	}
	for _, q := range e.queues {
		if qs := e.cfg.queueSettings(q.ID, q.Name); qs.MaxPods > 0 && per[labelValue(q.ID)] >= qs.MaxPods {
			continue // full: its first task stays at the head of the queue
		}
		var entry *api.QueueEntry
		var owner string
		var err error
		if e.cfg.UseOwnerToken {
			entry, owner, _, err = e.api.GetNextTaskWithOwner(ctx, q.ID)
		} else {
			// With one queue on a server that holds get_next_task until a
			// task arrives, a task starts within milliseconds of its enqueue.
			wait := 0
			if len(e.queues) == 1 && e.api.HasExtension("long_poll") {
				wait = 5000
			}
			entry, err = e.api.GetNextTask(ctx, q.ID, wait)
		}
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Log.Warn("could not access task queue", "queue", q.Name, "err", err)
			}
			continue
		}
		if entry == nil {
			continue
		}
		e.launch(ctx, entry.Task, q, owner, false)
		return true
	}
	return false
}

// launch turns one popped task into its pod. Nothing in it stops the
// executor: a task that cannot run fails with the reason.
func (e *Executor) launch(ctx context.Context, taskID string, q agent.QueueRef, owner string, again bool) {
	log := e.cfg.Log.With("task", taskID, "queue", q.Name)
	logf := func(level, msg string) { e.taskLog(ctx, taskID, level, msg) }
	// From here on, what carries the task's label is an earlier run's,
	// until this run's pod is made.
	st := &taskState{queueID: q.ID, events: map[string]int32{}, launching: true}
	e.mu.Lock()
	e.state[taskID] = st
	e.mu.Unlock()
	made := false // else the task is forgotten: it failed, or went back to its queue
	defer func() {
		if !made {
			e.untrack(taskID)
		}
	}()
	if !again {
		logf("INFO", fmt.Sprintf("task %s pulled from %s by worker %s", taskID, q.ID, e.cfg.WorkerID))
		// Visibility: the task waits for its pod in the pending queue,
		// marked as this executor's.
		if err := e.api.EditRuntime(ctx, taskID, map[string]any{runtimeMark: e.cfg.WorkerID, "_k8s_queue": q.ID,
			"_k8s_queue_name": q.Name}); err != nil {
			log.Warn("marking the task as this executor's", "err", err)
		}
		if err := e.toPending(ctx, taskID); err != nil {
			log.Warn("moving the task to the pending queue", "err", err)
		}
	}
	tapi, token, err := e.taskSession(ctx, owner)
	if err != nil {
		e.fail(ctx, taskID, "setup failed: could not log in as the task's owner: "+err.Error())
		return
	}
	prep, err := docker.PrepareTask(ctx, tapi, taskID, e.cfg.Selection, logf)
	if err != nil {
		e.fail(ctx, taskID, "setup failed: "+err.Error())
		return
	}
	args, err := MapDockerArgs(prep.Merged.Args)
	if err != nil {
		e.fail(ctx, taskID, "setup failed: "+err.Error())
		return
	}
	for _, n := range args.Notes {
		logf("WARNING", n)
	}
	tpl := e.cfg.Template
	if qs := e.cfg.queueSettings(q.ID, q.Name); qs.Template != nil {
		tpl = qs.Template
	}
	init := e.cfg.Init
	init.TaskScript = prep.Choice.SetupScript
	script := ""
	if len(init.Preprocess)+len(init.Init)+len(init.Extra) > 0 || strings.TrimSpace(init.TaskScript) != "" {
		script = docker.InitScript(init)
	}
	secretData := taskSecretData(token, args)
	if e.cfg.UseOwnerToken {
		if e.cfg.GitUser != "" {
			secretData["CLEARML_AGENT_GIT_USER"] = []byte(e.cfg.GitUser)
		}
		if e.cfg.GitPass != "" {
			secretData["CLEARML_AGENT_GIT_PASS"] = []byte(e.cfg.GitPass)
		}
	}
	in := podInput{TaskID: taskID, QueueID: q.ID, QueueName: q.Name, Image: prep.Choice.Image, Args: args, SetupScript: script}
	if len(secretData) > 0 {
		in.TaskSecret = e.cfg.ObjectName(taskID)
	}
	pod, notes := e.cfg.buildPod(tpl, in)
	for _, n := range notes {
		logf("WARNING", n)
	}
	// A pod of an earlier run of the task goes first.
	e.replaceEarlier(ctx, taskID, pod.Name, !again)
	if in.TaskSecret != "" {
		if err := e.putTaskSecret(ctx, in.TaskSecret, pod.Labels, secretData); err != nil {
			e.launchFailed(ctx, taskID, q, err)
			return
		}
	}
	kind, uid, err := e.create(ctx, pod)
	if apierrors.IsAlreadyExists(err) {
		// Made by an earlier executor: whatever carries the label is this run's.
		e.mu.Lock()
		st.launching, made = false, true
		e.mu.Unlock()
		log.Info("the task's "+kind+" exists already; following it", "name", pod.Name)
		return
	}
	if err != nil {
		e.launchFailed(ctx, taskID, q, err)
		return
	}
	e.mu.Lock()
	st.launching, st.uid, made = false, uid, true
	e.mu.Unlock()
	logf("INFO", fmt.Sprintf("Kubernetes %s %s/%s created (image %s)", kind, e.cfg.Namespace, pod.Name, prep.Choice.Image))
	log.Info("launched", "kind", kind, "name", pod.Name, "image", prep.Choice.Image)
}

// replaceEarlier deletes the pod (or job) an earlier run of the task left
// and waits until it is gone, so that the new run gets its pod. A task
// popped from a queue (fresh) is a new run: whatever has its pod's name is
// an earlier run's, finished and kept for keep_finished_sec, or still
// ending (its task already reported its end). For a task launched again
// from the pending queue (after a restart), an unfinished one is this
// run's: it stays, and is followed.
func (e *Executor) replaceEarlier(ctx context.Context, taskID, name string, fresh bool) {
	ns := e.cfg.Namespace
	gone := func() bool {
		if e.cfg.Kind == KindJob {
			_, err := e.kube.Jobs(ns).Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}
		_, err := e.kube.Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
	finished := false
	if e.cfg.Kind == KindJob {
		j, err := e.kube.Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return
		}
		finished = jobFinished(j)
	} else {
		p, err := e.kube.Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return
		}
		finished = p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	switch {
	case finished:
		e.taskLog(ctx, taskID, "INFO", "deleting the finished pod of an earlier run of the task: "+name)
	case fresh:
		e.taskLog(ctx, taskID, "INFO", "deleting the pod of an earlier run of the task, still ending: "+name)
	default:
		return
	}
	e.deleteTaskObjects(ctx, taskID, name)
	deadline := time.Now().Add(time.Minute)
	for !gone() && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, nil, 200*time.Millisecond) // the API server finishes a deletion on its own time
	}
}

// create makes the task's pod, or its job, and returns its UID.
func (e *Executor) create(ctx context.Context, pod *corev1.Pod) (string, types.UID, error) {
	if e.cfg.Kind == KindJob {
		j, err := e.kube.Jobs(e.cfg.Namespace).Create(ctx, wrapJob(pod), metav1.CreateOptions{})
		if err != nil {
			return "job", "", err
		}
		return "job", j.UID, nil
	}
	p, err := e.kube.Pods(e.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return "pod", "", err
	}
	return "pod", p.UID, nil
}

// launchFailed handles a refused pod: a request Kubernetes rejects (an
// invalid template, a quota, no permission) fails the task with the
// reason; an unreachable API server puts the task back at the head of its
// queue, to be tried again.
func (e *Executor) launchFailed(ctx context.Context, taskID string, q agent.QueueRef, err error) {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err) {
		e.fail(ctx, taskID, "K8S: creating the pod failed: "+err.Error())
		return
	}
	e.cfg.Log.Warn("creating the pod failed; the task goes back to its queue", "task", taskID, "err", err)
	e.taskLog(ctx, taskID, "WARNING", "Kubernetes API error, the task goes back to its queue: "+err.Error())
	if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": taskID, "queue": q.ID, "status_reason": "k8s api error",
		"update_execution_queue": false}, nil, apiclient.Default); err != nil {
		e.fail(ctx, taskID, "K8S: creating the pod failed: "+err.Error())
		return
	}
	e.api.Call(ctx, "", "queues.move_task_to_front", map[string]any{"queue": q.ID, "task": taskID}, nil, apiclient.Default)
}

// putTaskSecret creates (or replaces) the task's own Secret.
func (e *Executor) putTaskSecret(ctx context.Context, name string, labels map[string]string, data map[string][]byte) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.cfg.Namespace, Labels: labels}, Data: data}
	secrets := e.kube.Secrets(e.cfg.Namespace)
	_, err := secrets.Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("creating the task's secret: %w", err)
	}
	return nil
}

// toPending moves a popped task into the pending queue, as upstream does
// ("k8s pending scheduler"); the pod's execute takes it out.
func (e *Executor) toPending(ctx context.Context, taskID string) error {
	req := map[string]any{"task": taskID, "queue": e.pending.ID, "status_reason": pendingStatusReason,
		"status_message": "waiting for its Kubernetes pod", "update_execution_queue": false}
	err := e.api.Call(ctx, "", "tasks.enqueue", req, nil, apiclient.Default)
	if api.ErrInvalidTaskStatus.Is(err) {
		// A server without same-status changes: stop it first.
		e.api.SetStatus(ctx, "tasks.stopped", taskID, true, pendingStatusReason, "", apiclient.Default)
		err = e.api.Call(ctx, "", "tasks.enqueue", req, nil, apiclient.Default)
	}
	return err
}

// taskSession is the client for a task's calls: the executor's, or with
// --use-owner-token its owner's, and that owner's token.
func (e *Executor) taskSession(ctx context.Context, owner string) (*apiclient.Client, string, error) {
	if !e.cfg.UseOwnerToken {
		return e.api, "", nil
	}
	if owner == "" {
		return nil, "", fmt.Errorf("the server did not say who owns the task")
	}
	token, err := e.api.TokenFor(ctx, owner)
	if err != nil {
		return nil, "", err
	}
	c, err := e.api.WithToken(token)
	if err != nil {
		return nil, "", err
	}
	return c, token, nil
}

// recover launches the pods of this executor's tasks that wait in the
// pending queue without one: an executor killed between moving a task
// there and creating its pod. A task that has its pod is followed as is.
func (e *Executor) recover(ctx context.Context) {
	var resp struct {
		Queue struct {
			Entries []struct {
				Task string `json:"task"`
			} `json:"entries"`
		} `json:"queue"`
	}
	if err := e.api.Call(ctx, "", "queues.get_by_id", map[string]any{"queue": e.pending.ID}, &resp, apiclient.Default); err != nil {
		e.cfg.Log.Warn("reading the pending queue", "err", err)
		return
	}
	have := map[string]bool{}
	for _, obj := range e.pods.GetStore().List() {
		have[obj.(*corev1.Pod).Labels[LabelTask]] = true
	}
	if e.jobs != nil {
		for _, obj := range e.jobs.GetStore().List() {
			have[obj.(*batchv1.Job).Labels[LabelTask]] = true
		}
	}
	for _, en := range resp.Queue.Entries {
		if have[en.Task] {
			continue
		}
		t, err := e.api.Task(ctx, en.Task)
		if err != nil || t.Status != api.StatusQueued {
			continue
		}
		rt := t.Runtime
		if mark, _ := rt[runtimeMark].(string); mark != e.cfg.WorkerID {
			continue
		}
		qid, _ := rt["_k8s_queue"].(string)
		qname, _ := rt["_k8s_queue_name"].(string)
		e.cfg.Log.Info("launching the pod of a task left pending by an earlier run", "task", en.Task)
		e.launch(ctx, en.Task, agent.QueueRef{ID: qid, Name: qname}, t.User, true)
	}
}

// taskLog sends one line to the task's log.
func (e *Executor) taskLog(ctx context.Context, taskID, level, msg string) {
	ev := map[string]any{"type": "log", "task": taskID, "worker": e.cfg.WorkerID, "level": strings.ToLower(level),
		"msg": msg, "timestamp": time.Now().UnixMilli()}
	line, _ := json.Marshal(ev)
	if _, _, err := e.api.AddEvents(ctx, [][]byte{line}, apiclient.Default); err != nil && ctx.Err() == nil {
		e.cfg.Log.Warn("sending a line to the task log", "task", taskID, "err", err)
	}
}

// fail marks the task failed with a reason (and says it in its log).
func (e *Executor) fail(ctx context.Context, taskID, reason string) {
	e.cfg.Log.Warn("task failed", "task", taskID, "reason", reason)
	e.taskLog(ctx, taskID, "ERROR", reason)
	e.api.Dequeue(ctx, taskID)
	if err := e.api.SetStatus(ctx, "tasks.failed", taskID, true, reason, "Changed by clearml-agent "+e.cfg.WorkerID, apiclient.Final); err != nil {
		e.cfg.Log.Warn("could not fail the task", "task", taskID, "err", err)
	}
}

func (e *Executor) track(taskID, queueID string) *taskState {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.state[taskID]
	if !ok {
		st = &taskState{queueID: queueID, events: map[string]int32{}}
		e.state[taskID] = st
	}
	return st
}

func (e *Executor) untrack(taskID string) {
	e.mu.Lock()
	delete(e.state, taskID)
	e.mu.Unlock()
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
