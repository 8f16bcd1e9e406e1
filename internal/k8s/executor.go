package k8s

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/memtrim"
)

// Executor turns queued tasks into pods. Build it with New, run it with
// Run.
type Executor struct {
	cfg  Config
	api  *apiclient.Client
	kube Kube

	queues  []agent.QueueRef
	pending agent.QueueRef // the k8s_scheduler queue

	pods      cache.SharedIndexInformer
	jobs      cache.SharedIndexInformer // job kind only
	events    cache.SharedIndexInformer
	informers sync.WaitGroup // the informers' goroutines

	// wakeLaunch and wakeMonitor wake the loops when a pod or job changes.
	wakeLaunch, wakeMonitor chan struct{}

	started time.Time // events seen before it were logged by an earlier run

	mu    sync.Mutex
	state map[string]*taskState // task id -> what the executor knows
	gone  []*corev1.Pod         // pods deleted from the cluster, for the monitor
}

// taskState is what the executor remembers of one task's pod.
type taskState struct {
	queueID       string
	pendingReason string    // last reason written to the task
	pullErrorAt   time.Time // first image pull error seen
	seen          bool      // the pod (or job) is in the informer cache
	running       bool      // "pod running" logged
	done          bool      // the finished pod was handled
	doneAt        time.Time // when it finished
	deleting      bool      // we deleted the pod
	events        map[string]int32
	// uid is the pod's (or job's) this executor made for the task's run;
	// empty for one it found (after a restart): then any object with the
	// task's label is the run's.
	uid types.UID
	// launching: a launch of the task is under way, and what carries its
	// label is an earlier run's (a finished pod it replaces, or one whose
	// deletion the informer reports late).
	launching bool
}

// runsObject reports whether obj, a pod or a job with the task's label,
// is the object of the task's current run (false: an earlier run left it).
// Called with e.mu held.
func (st *taskState) runsObject(obj metav1.Object) bool {
	switch {
	case st.launching:
		return false
	case st.uid == "" || obj.GetUID() == st.uid:
		return true
	}
	ref := metav1.GetControllerOfNoCopy(obj) // a job's pod
	return ref != nil && ref.UID == st.uid
}

// New builds an executor. Nothing happens until Run.
func New(cfg Config, client *apiclient.Client, kube Kube) (*Executor, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return &Executor{cfg: cfg, api: client, kube: kube, wakeLaunch: make(chan struct{}, 1), wakeMonitor: make(chan struct{}, 1), state: map[string]*taskState{}}, nil
}

// Config returns the checked configuration.
func (e *Executor) Config() Config { return e.cfg }

func (e *Executor) wake() {
	for _, ch := range []chan struct{}{e.wakeLaunch, e.wakeMonitor} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run registers the worker, follows the pods and launches tasks until ctx
// ends. Pods keep running when it returns; a new executor with the same
// label finds them.
func (e *Executor) Run(ctx context.Context) error {
	err := e.run(ctx)
	if ctx.Err() != nil {
		return nil // a shutdown
	}
	return err
}

func (e *Executor) run(ctx context.Context) error {
	log := e.cfg.Log
	// Events are stamped in seconds by the API server.
	e.started = e.cfg.Now().Add(-time.Second).Truncate(time.Second)
	var err error
	if e.cfg.UseOwnerToken {
		if err := checkOwnerToken(e.api); err != nil {
			return err
		}
	}
	if e.queues, err = agent.ResolveQueues(ctx, e.api, e.cfg.Queues, e.cfg.CreateQueue, log); err != nil {
		return err
	}
	if e.pending, err = e.ensurePendingQueue(ctx); err != nil {
		return err
	}
	if !e.cfg.UseOwnerToken {
		if err := e.ensureSecret(ctx); err != nil {
			return err
		}
	}
	// The informers end with run.
	ictx, stopInformers := context.WithCancel(ctx)
	defer e.informers.Wait()
	defer stopInformers()
	if err := e.startInformers(ictx); err != nil {
		return err
	}
	ids := make([]string, 0, len(e.queues))
	for _, q := range e.queues {
		ids = append(ids, q.ID)
	}
	if err := e.api.RegisterWorker(ctx, e.cfg.WorkerID, ids, nil); err != nil {
		log.Warn("registering the worker", "err", err)
	}
	final := context.WithoutCancel(ctx)
	defer func() {
		uctx, cancel := context.WithTimeout(final, 10*time.Second)
		defer cancel()
		if err := e.api.UnregisterWorker(uctx, e.cfg.WorkerID); err != nil {
			log.Warn("unregistering the worker", "err", err)
		}
	}()
	log.Info("kubernetes executor started", "worker", e.cfg.WorkerID, "namespace", e.cfg.Namespace, "kind", e.cfg.Kind,
		"label", e.cfg.LimitLabel, "max_pods", e.cfg.MaxPods, "pending_queue", e.cfg.PendingQueue)
	e.recover(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.reportLoop(ctx, ids) })
	wg.Go(func() { e.monitorLoop(ctx) })
	wg.Go(func() { memtrim.After(ctx, log) })
	err = e.launchLoop(ctx)
	wg.Wait()
	return err
}

// startInformers starts the shared informers on this executor's pods
// (and jobs), and on the namespace's warning events, and waits for their
// first list.
func (e *Executor) startInformers(ctx context.Context) error {
	ns := e.cfg.Namespace
	labelled := func(o *metav1.ListOptions) { o.LabelSelector = e.cfg.LimitLabel }
	wake := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { e.wake() },
		UpdateFunc: func(any, any) { e.wake() },
		DeleteFunc: func(obj any) { e.podGone(ctx, obj); e.wake() },
	}
	e.pods = newInformer(e.kube, e.kube.Pods(ns), &corev1.Pod{}, labelled)
	if _, err := e.pods.AddEventHandler(wake); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	run := []cache.SharedIndexInformer{e.pods}
	if e.cfg.Kind == KindJob {
		e.jobs = newInformer(e.kube, e.kube.Jobs(ns), &batchv1.Job{}, labelled)
		if _, err := e.jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { e.wake() },
			UpdateFunc: func(any, any) { e.wake() }, DeleteFunc: func(any) { e.wake() }}); err != nil {
			return fmt.Errorf("watching jobs: %w", err)
		}
		run = append(run, e.jobs)
	}
	e.events = newInformer(e.kube, e.kube.Events(ns), &corev1.Event{}, func(o *metav1.ListOptions) { o.FieldSelector = "type=Warning" })
	if _, err := e.events.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.warningEvent(ctx, obj) },
		UpdateFunc: func(_, obj any) { e.warningEvent(ctx, obj) },
	}); err != nil {
		return fmt.Errorf("watching events: %w", err)
	}
	run = append(run, e.events)
	for _, inf := range run {
		e.informers.Go(func() { inf.RunWithContext(ctx) })
	}
	syncCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	synced := []cache.InformerSynced{e.pods.HasSynced, e.events.HasSynced}
	if e.jobs != nil {
		synced = append(synced, e.jobs.HasSynced)
	}
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("listing pods in namespace %s: no answer from the Kubernetes API server within 2 minutes (check access and RBAC)", e.cfg.Namespace)
	}
	return nil
}

// ensurePendingQueue finds (or creates, tagged k8s-glue) the queue where
// tasks wait for their pod.
func (e *Executor) ensurePendingQueue(ctx context.Context) (agent.QueueRef, error) {
	qs, err := agent.ResolveQueues(ctx, e.api, []string{e.cfg.PendingQueue}, false, e.cfg.Log)
	if err == nil {
		return qs[0], nil
	}
	var resp api.IDResponse
	cerr := e.api.Call(ctx, "", "queues.create", map[string]any{"name": e.cfg.PendingQueue, "system_tags": []string{pendingQueueTag}},
		&resp, apiclient.Default)
	if cerr != nil {
		if qs, err := agent.ResolveQueues(ctx, e.api, []string{e.cfg.PendingQueue}, false, e.cfg.Log); err == nil {
			return qs[0], nil // created by someone else meanwhile
		}
		return agent.QueueRef{}, fmt.Errorf("creating the pending queue %q: %w", e.cfg.PendingQueue, cerr)
	}
	return agent.QueueRef{ID: resp.ID, Name: e.cfg.PendingQueue}, nil
}

// ensureSecret makes the pods' credentials Secret from the executor's own
// credentials when it does not exist; an existing one is used as it is.
func (e *Executor) ensureSecret(ctx context.Context) error {
	_, err := e.kube.Secrets(e.cfg.Namespace).Get(ctx, e.cfg.SecretName, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading secret %s/%s: %w", e.cfg.Namespace, e.cfg.SecretName, err)
	}
	if e.cfg.AccessKey == "" || e.cfg.SecretKey == "" {
		return fmt.Errorf("secret %s/%s does not exist and the executor has no access key to put in it", e.cfg.Namespace, e.cfg.SecretName)
	}
	data := map[string][]byte{"CLEARML_API_ACCESS_KEY": []byte(e.cfg.AccessKey), "CLEARML_API_SECRET_KEY": []byte(e.cfg.SecretKey)}
	if e.cfg.GitUser != "" {
		data["CLEARML_AGENT_GIT_USER"] = []byte(e.cfg.GitUser)
	}
	if e.cfg.GitPass != "" {
		data["CLEARML_AGENT_GIT_PASS"] = []byte(e.cfg.GitPass)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: e.cfg.SecretName, Namespace: e.cfg.Namespace,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "clearml-agent"}}, Data: data}
	if _, err := e.kube.Secrets(e.cfg.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating secret %s/%s for the pods' credentials: %w", e.cfg.Namespace, e.cfg.SecretName, err)
	}
	e.cfg.Log.Info("created the pods' credentials secret", "secret", e.cfg.SecretName)
	return nil
}

// checkOwnerToken refuses --use-owner-token where the server cannot issue
// tokens for other users.
func checkOwnerToken(c *apiclient.Client) error {
	cl := c.Claims()
	if !c.HasExtension("impersonation") && (cl.FeatureSet == "" || cl.FeatureSet == "basic") {
		return errors.New("server does not support --use-owner-token: it cannot issue tokens for the task owner")
	}
	switch cl.Role {
	case "admin", "root", "system":
		return nil
	}
	return fmt.Errorf("--use-owner-token needs an admin or service account (found role %q)", cl.Role)
}

// reportLoop sends the executor's worker status reports.
func (e *Executor) reportLoop(ctx context.Context, queues []string) {
	wait := time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = 30 * time.Second
		r := apiclient.StatusReport{Worker: e.cfg.WorkerID, Queues: queues, Timestamp: time.Now()}
		if err := e.api.StatusReport(ctx, r); err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("sending status report", "err", err)
		}
	}
}

// sleep waits d, or until wake says a pod changed, or ctx ends.
func sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}
