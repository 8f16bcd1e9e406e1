package k8s_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/k8s"
)

// TestK8sTwoQueuesTemplates: each queue's tasks get their queue's pod
// template (labels, variables, node selector, resources), run to the end
// on the node, and no credential is in any pod spec.
func TestK8sTwoQueuesTemplates(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, map[string]string{"pool": "big"})
	e.createQueue("small")
	e.createQueue("big")
	conf := `agent.k8s.keep_finished_sec: 600
agent.k8s.queues {
  small { template { metadata.labels { tier: small }, spec.containers: [{ env: [{ name: POOL, value: small }] }] } }
  big {
    template {
      metadata.labels { tier: big }
      spec { nodeSelector { pool: big }, containers: [{ env: [{ name: POOL, value: big }], resources.limits.memory: 256Mi }] }
    }
  }
}`
	p := e.executor(conf, "--queue", "big,small")
	small := e.task(nil, "small task", "small", `echo "pool=$POOL task=$CLEARML_TASK_ID worker=$CLEARML_WORKER_ID"`, nil)
	big := e.task(nil, "big task", "big", `echo "pool=$POOL task=$CLEARML_TASK_ID"`, map[string]string{"image": e.busybox, "arguments": "-e FROM_ARGS=yes --ipc=host"})
	for id, pool := range map[string]string{small: "small", big: "big"} {
		tk := e.waitStatus(id, 90*time.Second, p, "completed", "failed", "stopped")
		log := e.log(id)
		if tk.Status != "completed" || !strings.Contains(log, "pool="+pool+" task="+id) {
			t.Fatalf("%s task = %s %q\n%s\n%s", pool, tk.Status, tk.StatusReason, log, p.Output())
		}
	}
	if log := e.log(small); !strings.Contains(log, "worker="+e.worker+":"+small) {
		t.Fatalf("the pod does not run as worker <executor>:<task>:\n%s", log)
	}
	if log := e.log(big); !strings.Contains(log, "--ipc=host has no pod equivalent") {
		t.Fatalf("an unmapped docker argument is not named in the task log:\n%s", log)
	}
	// The task's status comes from the in-pod agent; the pod ends after it.
	byTask := map[string]corev1.Pod{}
	e.waitFor(60*time.Second, "both pods succeeded", func() bool {
		for _, pod := range e.pods() {
			byTask[pod.Labels[k8s.LabelTask]] = pod
		}
		return byTask[small].Status.Phase == corev1.PodSucceeded && byTask[big].Status.Phase == corev1.PodSucceeded
	}, func() string { return string(byTask[small].Status.Phase) + " " + string(byTask[big].Status.Phase) })
	sp, bp := byTask[small], byTask[big]
	if sp.Labels["tier"] != "small" || bp.Labels["tier"] != "big" || bp.Spec.NodeSelector["pool"] != "big" {
		t.Fatalf("templates not applied: small labels %v, big labels %v selector %v", sp.Labels, bp.Labels, bp.Spec.NodeSelector)
	}
	mem := bp.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]
	if mem.String() != "256Mi" || sp.Name != "clearml-id-"+small {
		t.Fatalf("big pod memory %s; small pod %s", mem.String(), sp.Name)
	}
	found := false
	for _, env := range bp.Spec.Containers[0].Env {
		found = found || env.Name == "FROM_ARGS" && env.Value == "yes"
	}
	if !found {
		t.Fatalf("-e from the task's docker arguments is not in the pod: %v", bp.Spec.Containers[0].Env)
	}
	e.noSecretInPods()
}

// TestK8sMaxPods: with --max-pods 3 and 20 tasks there are never more than
// 3 unfinished pods, every task completes, and each task gets one pod.
func TestK8sMaxPods(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("many")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := e.cluster.Admin.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	created := map[string]int{}
	active := map[string]bool{}
	peak := 0
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case watch.Added:
				created[pod.Name]++
				active[pod.Name] = true
			case watch.Modified:
				if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
					delete(active, pod.Name)
				}
			case watch.Deleted:
				delete(active, pod.Name)
			}
			peak = max(peak, len(active))
			mu.Unlock()
		}
	}()
	var ids []string
	for i := range 20 {
		ids = append(ids, e.task(nil, "many "+string(rune('a'+i)), "many", "echo done $CLEARML_TASK_ID", nil))
	}
	p := e.executor("agent.k8s.keep_finished_sec: 0", "--queue", "many", "--max-pods", "3")
	for _, id := range ids {
		tk := e.waitStatus(id, 4*time.Minute, p, "completed", "failed", "stopped")
		if tk.Status != "completed" || !strings.Contains(e.log(id), "done "+id) {
			t.Fatalf("task %s = %s %q\n%s", id, tk.Status, tk.StatusReason, e.log(id))
		}
	}
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if peak > 3 || peak == 0 {
		t.Fatalf("peak of unfinished pods = %d, want 1..3", peak)
	}
	if len(created) != 20 {
		t.Fatalf("%d pods created for 20 tasks: %v", len(created), created)
	}
	for name, n := range created {
		if n != 1 {
			t.Fatalf("pod %s created %d times", name, n)
		}
	}
	t.Logf("peak unfinished pods: %d", peak)
}

// TestK8sAbort: a task stopped while its pod is pending (unschedulable:
// the pending reason is its status message) gets its pod deleted; a task
// stopped while it runs is stopped by the in-pod agent.
func TestK8sAbort(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, map[string]string{"pool": "cpu"})
	e.createQueue("nowhere")
	e.createQueue("run")
	p := e.executor(`agent.k8s.queues.nowhere.template.spec.nodeSelector.pool: gpu`, "--queue", "run,nowhere")
	pending := e.task(nil, "pending", "nowhere", "echo never", nil)
	e.waitFor(60*time.Second, "pending reason as status message", func() bool {
		return strings.Contains(e.get(pending).StatusMessage, "Unschedulable")
	}, func() string { return e.get(pending).StatusMessage + "\n" + p.Output() })
	if tk := e.get(pending); tk.Status != "queued" {
		t.Fatalf("pending task is %s, want queued (in the pending queue)", tk.Status)
	}
	if err := e.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": pending}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "the pending pod deleted", func() bool {
		_, err := e.cluster.Admin.CoreV1().Pods(e.ns).Get(context.Background(), "clearml-id-"+pending, metav1.GetOptions{})
		return err != nil
	}, func() string { return p.Output() })

	running := e.task(nil, "running", "run", "echo started; sleep 300; echo not aborted", nil)
	e.waitFor(60*time.Second, "the task running", func() bool { return strings.Contains(e.log(running), "started") },
		func() string { return e.log(running) + p.Output() })
	workers, err := e.api.WorkerIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(workers, " "), e.worker+":"+running) || !strings.Contains(strings.Join(workers, " "), e.worker) {
		t.Fatalf("workers = %v, want the executor %s and the pod's %s:%s", workers, e.worker, e.worker, running)
	}
	if err := e.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": running}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := e.waitStatus(running, 60*time.Second, p, "stopped", "failed", "completed")
	if tk.Status != "stopped" || strings.Contains(e.log(running), "not aborted") {
		t.Fatalf("running task = %s %q\n%s", tk.Status, tk.StatusReason, e.log(running))
	}
	e.waitFor(60*time.Second, "the aborted task's pod ended", func() bool {
		pod, err := e.cluster.Admin.CoreV1().Pods(e.ns).Get(context.Background(), "clearml-id-"+running, metav1.GetOptions{})
		return err != nil || pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
	}, func() string { return p.Output() })
}

// TestK8sAbsentImage: an image that cannot be pulled fails the task with
// the reason within the pull timeout, and the pod's warning events are in
// the task log.
func TestK8sAbsentImage(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("img")
	p := e.executor("agent.k8s.image_pull_timeout_sec: 3", "--queue", "img")
	start := time.Now()
	id := e.task(nil, "absent image", "img", "echo never", map[string]string{"image": "clearml-agent-test/absent:1"})
	tk := e.waitStatus(id, 90*time.Second, p, "failed", "completed", "stopped")
	took := time.Since(start)
	log := e.log(id)
	if tk.Status != "failed" || !strings.Contains(tk.StatusReason, "image pull failed") ||
		!(strings.Contains(tk.StatusReason, "ErrImagePull") || strings.Contains(tk.StatusReason, "ImagePullBackOff")) {
		t.Fatalf("task = %s %q\n%s\n%s", tk.Status, tk.StatusReason, log, p.Output())
	}
	if !strings.Contains(log, "Kubernetes warning") || !strings.Contains(log, "clearml-agent-test/absent:1") {
		t.Fatalf("no pod warning event in the task log:\n%s", log)
	}
	e.waitFor(30*time.Second, "the pod deleted", func() bool { return len(e.pods()) == 0 }, func() string { return p.Output() })
	t.Logf("enqueue to failed: %s (pull timeout 3 s)", took.Round(time.Millisecond))
}

// TestK8sOOMKilled: a task over its memory limit (docker --memory mapped
// to the pod's limit) fails with "OOMKilled".
func TestK8sOOMKilled(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("mem")
	p := e.executor("", "--queue", "mem")
	id := e.task(nil, "hungry", "mem", `echo eating; x=$(head -c 800000000 /dev/zero | tr '\0' 'a'); echo "survived ${#x}"`,
		map[string]string{"image": e.busybox, "arguments": "--memory 192m"})
	tk := e.waitStatus(id, 90*time.Second, p, "failed", "completed", "stopped")
	if tk.Status != "failed" || !strings.Contains(tk.StatusReason, "OOMKilled") {
		e.waitFor(20*time.Second, "OOMKilled in the reason", func() bool { return strings.Contains(e.get(id).StatusReason, "OOMKilled") },
			func() string {
				tk := e.get(id)
				return tk.Status + " " + tk.StatusReason + "\n" + e.log(id) + p.Output()
			})
	}
	for _, pod := range e.pods() {
		if q := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; q.Value() != 192<<20 {
			t.Fatalf("pod memory limit %s, want 192Mi", q.String())
		}
	}
}

// TestK8sRerun: a task queued again after its run failed, its finished
// pod kept, runs again in a new pod that replaces the old one: neither the
// old pod's end nor its deletion fails the new run in its place (the run
// fails on its own, with its own reason, as the first did).
func TestK8sRerun(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("again")
	p := e.executor("", "--queue", "again")
	id := e.task(nil, "twice", "again", `echo "ran once more"; exit 3`, map[string]string{"image": e.busybox})
	tk := e.waitStatus(id, 90*time.Second, p, "failed", "completed", "stopped")
	if tk.Status != "failed" || strings.Contains(tk.StatusReason, "K8S") {
		t.Fatalf("first run = %s %q\n%s", tk.Status, tk.StatusReason, e.log(id))
	}
	firstReason := tk.StatusReason
	first := e.pods()
	if len(first) != 1 {
		t.Fatalf("%d pods after the first run, want 1 (kept)", len(first))
	}
	if err := e.api.Call(context.Background(), "", "tasks.enqueue", map[string]any{"task": id, "queue_name": "again"}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	e.waitFor(90*time.Second, "the second run's end", func() bool {
		return strings.Count(e.log(id), "ran once more") == 2 && e.get(id).Status == "failed"
	}, func() string {
		tk := e.get(id)
		return tk.Status + " " + tk.StatusReason + "\n" + e.log(id) + p.Output()
	})
	if log := e.log(id); !strings.Contains(log, "of an earlier run of the task") {
		t.Fatalf("the old pod was not replaced:\n%s", log)
	}
	if tk := e.get(id); tk.StatusReason != firstReason {
		t.Fatalf("second run failed with %q, want the task's own reason %q\n%s", tk.StatusReason, firstReason, e.log(id))
	}
	if second := e.pods(); len(second) != 1 || second[0].UID == first[0].UID {
		t.Fatalf("pods after the second run: %d, want 1 new one", len(second))
	}
}

// TestK8sRestart: the executor killed mid-run and started again finds its
// pods by label: no task gets a second pod, and every task finishes.
func TestK8sRestart(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("work")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := e.cluster.Admin.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	created := map[string]int{}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				mu.Lock()
				created[pod.Name]++
				mu.Unlock()
			}
		}
	}()
	var ids []string
	for i := range 6 {
		ids = append(ids, e.task(nil, "work "+string(rune('a'+i)), "work", "echo begin; sleep 2; echo end $CLEARML_TASK_ID", nil))
	}
	first := e.executor("agent.k8s.keep_finished_sec: 0", "--queue", "work", "--max-pods", "3")
	e.waitFor(60*time.Second, "a task running", func() bool { return strings.Contains(e.log(ids[0]), "begin") },
		func() string { return first.Output() })
	first.Signal(syscall.SIGKILL)
	first.Wait(10 * time.Second)
	second := e.executor("agent.k8s.keep_finished_sec: 0", "--queue", "work", "--max-pods", "3")
	for _, id := range ids {
		tk := e.waitStatus(id, 3*time.Minute, second, "completed", "failed", "stopped")
		if tk.Status != "completed" || strings.Count(e.log(id), "end "+id) != 1 {
			t.Fatalf("task %s = %s %q\n%s\n--- first\n%s", id, tk.Status, tk.StatusReason, e.log(id), first.Output())
		}
	}
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	for name, n := range created {
		if n != 1 {
			t.Fatalf("pod %s created %d times", name, n)
		}
	}
	if len(created) != 6 {
		t.Fatalf("%d pods for 6 tasks", len(created))
	}
}

// TestK8sOwnerToken: with --use-owner-token the pod acts as the task's
// owner through a per-task Secret; the executor's credentials are not
// given to the pod at all, and no token is in the pod spec.
func TestK8sOwnerToken(t *testing.T) {
	t.Parallel()
	e := newKEnv(t, nil)
	e.createQueue("owned")
	ctx := context.Background()
	var user struct{ ID string }
	if err := e.api.Call(ctx, "", "auth.create_user", map[string]any{"name": "alice"}, &user, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	var creds struct {
		Credentials struct {
			AccessKey string `json:"access_key"`
			SecretKey string `json:"secret_key"`
		}
	}
	if err := e.api.Call(ctx, "", "auth.create_credentials", map[string]any{"user": user.ID}, &creds, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	alice, err := apiclient.New(apiclient.Config{Server: e.srv.URL, AccessKey: creds.Credentials.AccessKey, SecretKey: creds.Credentials.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	p := e.executor("agent.k8s.keep_finished_sec: 600", "--queue", "owned", "--use-owner-token")
	id := e.task(alice, "alice's task", "owned", `echo "has token: ${CLEARML_AUTH_TOKEN:+yes} key: ${CLEARML_API_ACCESS_KEY:-none}"`,
		map[string]string{"image": e.busybox, "arguments": "-e MY_API_TOKEN=s3cr3t-value-42"})
	tk := e.waitStatus(id, 90*time.Second, p, "completed", "failed", "stopped")
	log := e.log(id)
	if tk.Status != "completed" || tk.LastChangedBy != user.ID || !strings.Contains(log, "has token: yes key: none") {
		t.Fatalf("task = %s %q last_changed_by=%s (alice %s)\n%s\n%s", tk.Status, tk.StatusReason, tk.LastChangedBy, user.ID, log, p.Output())
	}
	pods := e.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods", len(pods))
	}
	main := pods[0].Spec.Containers[0]
	var refs []string
	for _, ef := range main.EnvFrom {
		refs = append(refs, ef.SecretRef.Name)
	}
	if strings.Join(refs, ",") != "clearml-id-"+id {
		t.Fatalf("the pod references secrets %v, want only its own", refs)
	}
	sec, err := e.cluster.Admin.CoreV1().Secrets(e.ns).Get(ctx, "clearml-id-"+id, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data["CLEARML_AUTH_TOKEN"]) == 0 || string(sec.Data["MY_API_TOKEN"]) != "s3cr3t-value-42" {
		t.Fatalf("task secret keys: %v", keys(sec.Data))
	}
	e.noSecretInPods(string(sec.Data["CLEARML_AUTH_TOKEN"]), "s3cr3t-value-42")
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
