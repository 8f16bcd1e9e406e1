package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/watchlist"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

// clientsetKube is Kube on a client-go clientset (here the fake one).
type clientsetKube struct{ cs kubernetes.Interface }

func (k clientsetKube) Pods(ns string) Resource[*corev1.Pod, *corev1.PodList] {
	return k.cs.CoreV1().Pods(ns)
}

func (k clientsetKube) Jobs(ns string) Resource[*batchv1.Job, *batchv1.JobList] {
	return k.cs.BatchV1().Jobs(ns)
}

func (k clientsetKube) Secrets(ns string) Resource[*corev1.Secret, *corev1.SecretList] {
	return k.cs.CoreV1().Secrets(ns)
}

// IsWatchListSemanticsUnSupported passes on what the clientset says of
// streamed lists, for the informers.
func (k clientsetKube) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(k.cs)
}

func (k clientsetKube) Events(ns string) Resource[*corev1.Event, *corev1.EventList] {
	return k.cs.CoreV1().Events(ns)
}

// unit is an executor on client-go's fake clientset, against a real
// ClearML server (in this process, on SQLite).
type unit struct {
	t    *testing.T
	api  *apiclient.Client
	kube *fake.Clientset
	cfg  Config
	stop func()
}

func newUnit(t *testing.T, edit func(*Config)) *unit {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "clearml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := server.Bootstrap(ctx, st); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(st, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	creds, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(apiclient.Config{Server: hs.URL, AccessKey: creds.AccessKey, SecretKey: creds.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQueue(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	u := &unit{t: t, api: c, kube: fake.NewClientset()}
	// The API server stamps what it creates.
	var uids atomic.Int64
	u.kube.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if obj, ok := a.(k8stesting.CreateAction).GetObject().(metav1.Object); ok {
			obj.SetCreationTimestamp(metav1.Now())
			obj.SetUID(types.UID(fmt.Sprintf("uid-%d", uids.Add(1))))
		}
		return false, nil, nil
	})
	u.cfg = Config{Namespace: "ns", Queues: []string{"work"}, WorkerID: "exec", AgentImage: "reg/agent:1",
		APIServer: hs.URL, AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, PollInterval: 100 * time.Millisecond,
		ImagePullTimeout: time.Hour, KeepFinished: time.Hour,
		Selection: docker.Selection{Defaults: docker.Defaults{Image: "busybox:1"}, Merge: docker.MergeOptions{TaskGPUs: true}}}
	if edit != nil {
		edit(&u.cfg)
	}
	u.start()
	return u
}

// start runs an executor until the test ends (or stop).
func (u *unit) start() {
	ex, err := New(u.cfg, u.api, clientsetKube{u.kube})
	if err != nil {
		u.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	u.stop = func() {
		cancel()
		if err := <-done; err != nil {
			u.t.Errorf("executor: %v", err)
		}
	}
	u.t.Cleanup(func() { u.stop(); u.stop = func() {} })
}

func (u *unit) task(name string, container map[string]string) string {
	u.t.Helper()
	ctx := context.Background()
	var created api.IDResponse
	body := map[string]any{"name": "task " + name, "type": "training", "script": map[string]any{"binary": "/bin/sh", "diff": "echo"}}
	if container != nil {
		body["container"] = container
	}
	if err := u.api.Call(ctx, "", "tasks.create", body, &created, apiclient.Default); err != nil {
		u.t.Fatal(err)
	}
	if err := u.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": "work"}, nil, apiclient.Default); err != nil {
		u.t.Fatal(err)
	}
	return created.ID
}

func (u *unit) waitFor(what string, cond func() bool, describe func() string) {
	u.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: not within 20 s: %s", what, describe())
		}
		<-tick.C
	}
}

// pod waits for the task's pod.
func (u *unit) pod(task string) *corev1.Pod {
	u.t.Helper()
	return waitObject(u, "pod of "+task, u.kube.CoreV1().Pods("ns").Get, "clearml-id-"+task)
}

// job waits for the task's job.
func (u *unit) job(task string) *batchv1.Job {
	u.t.Helper()
	return waitObject(u, "job of "+task, u.kube.BatchV1().Jobs("ns").Get, "clearml-id-"+task)
}

// waitObject waits until get finds the object called name.
func waitObject[T any](u *unit, what string, get func(context.Context, string, metav1.GetOptions) (T, error), name string) T {
	u.t.Helper()
	var obj T
	u.waitFor(what, func() bool {
		var err error
		obj, err = get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	}, func() string { return "" })
	return obj
}

func (u *unit) setStatus(p *corev1.Pod, s corev1.PodStatus) {
	u.t.Helper()
	cur, err := u.kube.CoreV1().Pods("ns").Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		u.t.Fatal(err)
	}
	cur.Status = s
	if _, err := u.kube.CoreV1().Pods("ns").UpdateStatus(context.Background(), cur, metav1.UpdateOptions{}); err != nil {
		u.t.Fatal(err)
	}
}

func (u *unit) task2(id string) *api.Task {
	t, err := u.api.Task(context.Background(), id)
	if err != nil {
		u.t.Fatal(err)
	}
	return t
}

func (u *unit) waitReason(id, status, reason string) {
	u.t.Helper()
	u.waitFor(fmt.Sprintf("task %s %s %q", id, status, reason), func() bool {
		t := u.task2(id)
		return t.Status == status && strings.Contains(t.StatusReason, reason)
	}, func() string { t := u.task2(id); return t.Status + " " + t.StatusReason })
}

func (u *unit) queueEntries(name string) []string {
	u.t.Helper()
	ctx := context.Background()
	qs, err := u.api.QueuesByName(ctx, name)
	if err != nil || len(qs) != 1 {
		u.t.Fatalf("queue %s: %v %v", name, qs, err)
	}
	var resp struct {
		Queue struct {
			Entries []struct {
				Task string `json:"task"`
			} `json:"entries"`
		} `json:"queue"`
	}
	if err := u.api.Call(ctx, "", "queues.get_by_id", map[string]any{"queue": qs[0].ID}, &resp, apiclient.Default); err != nil {
		u.t.Fatal(err)
	}
	var out []string
	for _, e := range resp.Queue.Entries {
		out = append(out, e.Task)
	}
	return out
}

func (u *unit) log(id string) string {
	var resp api.TaskLogResponse
	u.api.Call(context.Background(), "", "events.get_task_log", map[string]any{"task": id, "batch_size": 1000, "navigate_earlier": false}, &resp, apiclient.Default)
	var b strings.Builder
	for _, ev := range resp.Events {
		fmt.Fprintln(&b, ev["msg"])
	}
	return b.String()
}

func TestExecutorLaunch(t *testing.T) {
	t.Parallel()
	u := newUnit(t, nil)
	id := u.task("a", map[string]string{"image": "python:3.11", "arguments": "--memory 1g -e HF_TOKEN=hidden-1 --privileged"})
	p := u.pod(id)
	if p.Spec.Containers[0].Image != "python:3.11" || p.Labels[LabelTask] != id {
		t.Fatalf("pod %+v", p)
	}
	// The task waits in the pending queue; the credentials Secret exists;
	// the secret-named variable is in the task's own Secret only.
	u.waitFor("task in k8s_scheduler", func() bool { return len(u.queueEntries(DefaultPendingQueue)) == 1 }, func() string { return "" })
	sec, err := u.kube.CoreV1().Secrets("ns").Get(context.Background(), DefaultSecretName, metav1.GetOptions{})
	if err != nil || string(sec.Data["CLEARML_API_SECRET_KEY"]) != u.cfg.SecretKey {
		t.Fatalf("credentials secret: %v %v", err, sec)
	}
	ts, err := u.kube.CoreV1().Secrets("ns").Get(context.Background(), "clearml-id-"+id, metav1.GetOptions{})
	if err != nil || string(ts.Data["HF_TOKEN"]) != "hidden-1" {
		t.Fatalf("task secret: %v %v", err, ts)
	}
	if strings.Contains(fmt.Sprint(p.Spec), "hidden-1") || strings.Contains(fmt.Sprint(p.Spec), u.cfg.SecretKey) {
		t.Fatalf("secret in the pod spec: %+v", p.Spec)
	}
	// The pending reason becomes the status message; a warning event goes
	// to the task log.
	u.setStatus(p, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
		Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient memory."}}})
	u.waitFor("status message", func() bool { return strings.Contains(u.task2(id).StatusMessage, "Insufficient memory") },
		func() string { return u.task2(id).StatusMessage })
	u.kube.CoreV1().Events("ns").Create(context.Background(), &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "ev1", Namespace: "ns", UID: "u1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: p.Name}, Type: "Warning", Reason: "FailedScheduling",
		Message: "no nodes", Count: 1}, metav1.CreateOptions{})
	u.waitFor("warning in the log", func() bool { return strings.Contains(u.log(id), "FailedScheduling: no nodes") }, func() string { return u.log(id) })
	if log := u.log(id); !strings.Contains(log, "--privileged has no pod equivalent") {
		t.Fatalf("unmapped argument not in the log:\n%s", log)
	}
	// An OOM kill of a task still queued (its pod never ran execute) fails it.
	u.setStatus(p, corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "clearml-task",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}}}})
	u.waitReason(id, "failed", "OOMKilled")
}

func TestExecutorFailures(t *testing.T) {
	t.Parallel()
	u := newUnit(t, nil)
	// An image that is never pulled fails the task at once, and the pod goes.
	a := u.task("a", map[string]string{"image": "absent:1"})
	pa := u.pod(a)
	u.setStatus(pa, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "clearml-task",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "not present"}}}}})
	u.waitReason(a, "failed", "image pull failed: ErrImageNeverPull: not present")
	u.waitFor("pod deleted", func() bool {
		_, err := u.kube.CoreV1().Pods("ns").Get(context.Background(), pa.Name, metav1.GetOptions{})
		return err != nil
	}, func() string { return "" })
	// A running task's pod deleted by someone else (a lost node) fails it.
	b := u.task("b", nil)
	pb := u.pod(b)
	u.setStatus(pb, corev1.PodStatus{Phase: corev1.PodRunning})
	if err := u.api.SetStatus(context.Background(), "tasks.started", b, true, "", "", apiclient.Default); err != nil {
		t.Fatal(err)
	}
	u.waitFor("running seen", func() bool { return strings.Contains(u.log(b), "running on node") }, func() string { return u.log(b) })
	u.kube.CoreV1().Pods("ns").Delete(context.Background(), pb.Name, metav1.DeleteOptions{})
	u.waitReason(b, "failed", "was deleted before the task ended")
	// An evicted pod whose task the in-pod agent already failed gets the
	// eviction added to its reason.
	c := u.task("c", nil)
	pc := u.pod(c)
	u.api.SetStatus(context.Background(), "tasks.started", c, true, "", "", apiclient.Default)
	u.api.SetStatus(context.Background(), "tasks.failed", c, true, "worker execution exit code 137", "", apiclient.Default)
	u.setStatus(pc, corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."})
	u.waitReason(c, "failed", "Evicted: The node was low on resource: memory. (worker execution exit code 137)")
	// A task stopped while its pod is pending gets its pod deleted.
	d := u.task("d", nil)
	pd := u.pod(d)
	if err := u.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": d}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	u.waitFor("pending pod of a stopped task deleted", func() bool {
		_, err := u.kube.CoreV1().Pods("ns").Get(context.Background(), pd.Name, metav1.GetOptions{})
		return err != nil
	}, func() string { return u.task2(d).Status })
}

// TestExecutorLimit: a task that does not fit stays at the head of its
// queue; it is launched once a pod ends.
func TestExecutorLimit(t *testing.T) {
	t.Parallel()
	u := newUnit(t, func(c *Config) { c.MaxPods = 1; c.KeepFinished = 0 })
	a := u.task("a", nil)
	b := u.task("b", nil)
	pa := u.pod(a)
	u.waitFor("a in pending queue", func() bool { return len(u.queueEntries(DefaultPendingQueue)) == 1 }, func() string { return "" })
	if got := u.queueEntries("work"); len(got) != 1 || got[0] != b {
		t.Fatalf("queue work = %v, want [%s] (not popped)", got, b)
	}
	pods, _ := u.kube.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods, want 1", len(pods.Items))
	}
	u.api.SetStatus(context.Background(), "tasks.started", a, true, "", "", apiclient.Default)
	u.api.SetStatus(context.Background(), "tasks.completed", a, true, "", "", apiclient.Default)
	u.setStatus(pa, corev1.PodStatus{Phase: corev1.PodSucceeded})
	u.pod(b)
	if st := u.task2(a); st.Status != "completed" {
		t.Fatalf("a = %s %s", st.Status, st.StatusReason)
	}
}

// TestExecutorRestart: a restarted executor follows the pods it finds by
// label and launches only the pods of its pending tasks that have none.
func TestExecutorRestart(t *testing.T) {
	t.Parallel()
	u := newUnit(t, nil)
	a := u.task("a", nil)
	b := u.task("b", nil)
	u.pod(a)
	pb := u.pod(b)
	u.waitFor("both pending", func() bool { return len(u.queueEntries(DefaultPendingQueue)) == 2 }, func() string { return "" })
	u.stop()
	// b's pod vanished while no executor ran (or was never made).
	u.kube.CoreV1().Pods("ns").Delete(context.Background(), pb.Name, metav1.DeleteOptions{})
	u.kube.ClearActions()
	u.start()
	u.pod(b)
	creates := 0
	for _, act := range u.kube.Actions() {
		if act.GetVerb() == "create" && act.GetResource().Resource == "pods" {
			creates++
		}
	}
	if creates != 1 {
		t.Fatalf("%d pods created after the restart, want 1 (b's)", creates)
	}
}

func TestExecutorJobKind(t *testing.T) {
	t.Parallel()
	u := newUnit(t, func(c *Config) { c.Kind = KindJob })
	a := u.task("a", nil)
	j := u.job(a)
	if *j.Spec.BackoffLimit != 0 || j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever || j.Spec.Template.Labels[LabelTask] != a {
		t.Fatalf("job %+v", j.Spec)
	}
}

// jobPod makes the job's pod, as the job controller would.
func (u *unit) jobPod(j *batchv1.Job) *corev1.Pod {
	u.t.Helper()
	yes := true
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x1", Namespace: "ns", Labels: j.Spec.Template.Labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: &yes}}},
		Spec: j.Spec.Template.Spec}
	p, err := u.kube.CoreV1().Pods("ns").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		u.t.Fatal(err)
	}
	return p
}

// TestExecutorJobRerun: with jobs, a task queued again gets a new job in
// place of its earlier run's, finished and kept; the earlier job's pod,
// still in the cache, does not fail the new run.
func TestExecutorJobRerun(t *testing.T) {
	t.Parallel()
	u := newUnit(t, func(c *Config) { c.Kind = KindJob })
	ctx := context.Background()
	a := u.task("a", nil)
	jobs := u.kube.BatchV1().Jobs("ns")
	j := u.job(a)
	// The job's pod ends; so does the job.
	pod := u.jobPod(j)
	u.api.SetStatus(ctx, "tasks.started", a, true, "", "", apiclient.Default)
	u.api.SetStatus(ctx, "tasks.failed", a, true, "", "", apiclient.Default)
	u.setStatus(pod, corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "clearml-task",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}}})
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue}}
	if _, err := jobs.UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := u.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": a, "queue_name": "work"}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	u.waitFor("a new job", func() bool {
		again, err := jobs.Get(ctx, j.Name, metav1.GetOptions{})
		return err == nil && again.UID != j.UID && strings.Contains(u.log(a), "Kubernetes job ns/"+j.Name+" created")
	}, func() string { return u.log(a) })
	if !strings.Contains(u.log(a), "finished pod of an earlier run") {
		t.Fatalf("the earlier job was not replaced:\n%s", u.log(a))
	}
	// A pod of the earlier job still listed (a late deletion) is not the
	// run's: the task stays queued, waiting for the new job's pod.
	stale := pod.DeepCopy()
	stale.Name, stale.ResourceVersion, stale.UID = stale.Name+"-late", "", ""
	stale.Status = corev1.PodStatus{Phase: corev1.PodFailed}
	if _, err := u.kube.CoreV1().Pods("ns").Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Two passes of the monitor after it: another task's pending pod, made
	// after the late one (the informer keeps the order), shows one reason
	// and then another in that task's log.
	b := u.task("b", nil)
	pb := u.jobPod(u.job(b))
	for _, why := range []string{"first pass", "second pass"} {
		u.setStatus(pb, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
			Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: why}}})
		u.waitFor("b's pending reason: "+why, func() bool { return strings.Contains(u.log(b), why) }, func() string { return u.log(b) })
	}
	if tk := u.task2(a); tk.Status != "queued" {
		t.Fatalf("the task's second run = %s (%s), want queued\n%s", tk.Status, tk.StatusReason, u.log(a))
	}
}

// TestExecutorRerun: a task enqueued again while the finished pod of its
// earlier run is kept gets a new pod.
func TestExecutorRerun(t *testing.T) {
	t.Parallel()
	u := newUnit(t, nil)
	a := u.task("a", nil)
	pa := u.pod(a)
	u.api.SetStatus(context.Background(), "tasks.started", a, true, "", "", apiclient.Default)
	u.api.SetStatus(context.Background(), "tasks.failed", a, true, "", "", apiclient.Default)
	u.setStatus(pa, corev1.PodStatus{Phase: corev1.PodSucceeded})
	if err := u.api.Call(context.Background(), "", "tasks.enqueue", map[string]any{"task": a, "queue_name": "work"}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	var again *corev1.Pod
	u.waitFor("a new pod", func() bool {
		p, err := u.kube.CoreV1().Pods("ns").Get(context.Background(), pa.Name, metav1.GetOptions{})
		again = p
		return err == nil && p.Status.Phase == "" && strings.Contains(u.log(a), "finished pod of an earlier run")
	}, func() string { return u.log(a) })
	// The new run is the task's: neither the old pod's end nor its
	// deletion fails it.
	if again.UID == pa.UID {
		t.Fatalf("the new pod has the old one's UID %s", pa.UID)
	}
	u.api.SetStatus(context.Background(), "tasks.started", a, true, "", "", apiclient.Default)
	u.setStatus(again, corev1.PodStatus{Phase: corev1.PodRunning})
	u.waitFor("the new pod seen running", func() bool { return strings.Contains(u.log(a), "running on node") }, func() string { return u.log(a) })
	if tk := u.task2(a); tk.Status != "in_progress" {
		t.Fatalf("the task's second run = %s (%s), want in_progress\n%s", tk.Status, tk.StatusReason, u.log(a))
	}
}

// TestExecutorFinishedPodOfTaskQueuedAgain: a task queued again by hand
// before the executor saw its earlier pod end is left to its new run: the
// old pod's end does not fail it (the race TestExecutorRerun once lost).
func TestExecutorFinishedPodOfTaskQueuedAgain(t *testing.T) {
	t.Parallel()
	u := newUnit(t, func(c *Config) { c.KeepFinished = 0 })
	if _, err := u.api.CreateQueue(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	a := u.task("a", nil)
	pa := u.pod(a)
	ctx := context.Background()
	u.api.SetStatus(ctx, "tasks.started", a, true, "", "", apiclient.Default)
	u.api.SetStatus(ctx, "tasks.failed", a, true, "", "", apiclient.Default)
	// Queued where this executor does not pop, so the order is certain:
	// the task is queued again before its pod ends.
	if err := u.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": a, "queue_name": "other"}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	u.setStatus(pa, corev1.PodStatus{Phase: corev1.PodSucceeded})
	// With keep_finished 0 the pod goes in the same pass that settles its task.
	u.waitFor("finished pod deleted", func() bool {
		_, err := u.kube.CoreV1().Pods("ns").Get(ctx, pa.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, func() string { return "" })
	if st := u.task2(a); st.Status != "queued" {
		t.Fatalf("task queued again = %s (%s), want queued", st.Status, st.StatusReason)
	}
	if got := u.queueEntries("other"); len(got) != 1 || got[0] != a {
		t.Fatalf("queue other = %v, want [%s]", got, a)
	}
}

// TestExecutorQueueLimitAndPendingTimeout: a queue at its own max_pods is
// not popped; a pod pending past the timeout fails its task with the
// reason, and the task after it gets its pod.
func TestExecutorQueueLimitAndPendingTimeout(t *testing.T) {
	t.Parallel()
	u := newUnit(t, func(c *Config) {
		c.PerQueue = map[string]Queue{"WORK": {MaxPods: 1}}
		c.PendingTimeout = 2 * time.Second
	})
	a := u.task("a", nil)
	b := u.task("b", nil)
	pa := u.pod(a)
	if got := u.queueEntries("work"); len(got) != 1 || got[0] != b {
		t.Fatalf("queue work = %v, want [%s]", got, b)
	}
	u.setStatus(pa, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
		Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available"}}})
	u.waitReason(a, "failed", "pod pending for more than 2s: Unschedulable: 0/1 nodes are available")
	u.pod(b)
}
