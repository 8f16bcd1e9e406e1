package k8s

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Resource is what the executor does with one kind of object in one
// namespace. client-go's typed clients have these methods, those of its
// fake clientset included.
type Resource[T, L runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	DeleteCollection(ctx context.Context, opts metav1.DeleteOptions, listOpts metav1.ListOptions) error
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// Kube is the part of the Kubernetes API the executor uses: pods, jobs,
// secrets and events.
type Kube interface {
	Pods(namespace string) Resource[*corev1.Pod, *corev1.PodList]
	Jobs(namespace string) Resource[*batchv1.Job, *batchv1.JobList]
	Secrets(namespace string) Resource[*corev1.Secret, *corev1.SecretList]
	Events(namespace string) Resource[*corev1.Event, *corev1.EventList]
}

// restKube is Kube on client-go's REST clients, with a scheme of the two
// API groups the executor uses. client-go's full clientset registers every
// built-in API type when the program starts, which every process of this
// binary (each daemon, each task's supervisor) would pay for in start time
// and memory; this one registers two groups when the executor starts.
type restKube struct {
	core, batch rest.Interface
	params      runtime.ParameterCodec
}

// NewKube connects to the API server cfg names.
func NewKube(cfg *rest.Config) (Kube, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("registering the Kubernetes API types: %w", err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring the Kubernetes client: %w", err)
	}
	client := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion = &gv
		c.APIPath = apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientForConfigAndClient(c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("configuring the Kubernetes client for %s: %w", gv, err)
		}
		return rc, nil
	}
	k := &restKube{params: runtime.NewParameterCodec(scheme)}
	if k.core, err = client(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if k.batch, err = client(batchv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *restKube) Pods(ns string) Resource[*corev1.Pod, *corev1.PodList] {
	return gentype.NewClientWithList("pods", k.core, k.params, ns,
		func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} })
}

func (k *restKube) Jobs(ns string) Resource[*batchv1.Job, *batchv1.JobList] {
	return gentype.NewClientWithList("jobs", k.batch, k.params, ns,
		func() *batchv1.Job { return &batchv1.Job{} }, func() *batchv1.JobList { return &batchv1.JobList{} })
}

func (k *restKube) Secrets(ns string) Resource[*corev1.Secret, *corev1.SecretList] {
	return gentype.NewClientWithList("secrets", k.core, k.params, ns,
		func() *corev1.Secret { return &corev1.Secret{} }, func() *corev1.SecretList { return &corev1.SecretList{} })
}

func (k *restKube) Events(ns string) Resource[*corev1.Event, *corev1.EventList] {
	return gentype.NewClientWithList("events", k.core, k.params, ns,
		func() *corev1.Event { return &corev1.Event{} }, func() *corev1.EventList { return &corev1.EventList{} })
}

// newInformer follows the objects of r that the list options select
// (tweak sets the selectors), with the namespace index client-go's own
// informers have. Like those, it asks the client whether it can stream
// the first list in a watch (the fake clientset cannot).
func newInformer[T, L runtime.Object](client Kube, r Resource[T, L], example runtime.Object, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			tweak(&o)
			return r.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			tweak(&o)
			return r.Watch(ctx, o)
		},
	}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), example, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
