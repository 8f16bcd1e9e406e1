package k8s

import (
	"context"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestRunsObject: while a task is launched again, nothing with its label
// is its run; once its pod (or job) is made, only that object and the
// job's pods are; a run found after a restart owns whatever has its label.
func TestRunsObject(t *testing.T) {
	t.Parallel()
	yes := true
	pod := func(uid, owner types.UID) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}}
		if owner != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: owner, Controller: &yes}}
		}
		return p
	}
	tests := []struct {
		name string
		st   taskState
		obj  metav1.Object
		want bool
	}{
		{"launching, the earlier pod", taskState{launching: true}, pod("old", ""), false},
		{"made, its pod", taskState{uid: "new"}, pod("new", ""), true},
		{"made, the earlier pod", taskState{uid: "new"}, pod("old", ""), false},
		{"made, its job", taskState{uid: "job2"}, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{UID: "job2"}}, true},
		{"made, its job's pod", taskState{uid: "job2"}, pod("p", "job2"), true},
		{"made, the earlier job's pod", taskState{uid: "job2"}, pod("p", "job1"), false},
		{"found after a restart", taskState{}, pod("any", ""), true},
	}
	for _, tt := range tests {
		if got := tt.st.runsObject(tt.obj); got != tt.want {
			t.Errorf("%s: runsObject = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestEarlierPodGoneLeavesTheRun: the informer's late report that the
// finished pod of an earlier run was deleted neither forgets the task's
// new run nor fails it (the executor has no API client here: a call to
// the server would panic). The pod of the run itself gone is lost.
func TestEarlierPodGoneLeavesTheRun(t *testing.T) {
	t.Parallel()
	gonePod := func(uid types.UID) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "clearml-id-t", UID: uid, Labels: map[string]string{LabelTask: "t"}}}
	}
	for _, st := range []*taskState{{launching: true}, {uid: "new"}} {
		e := &Executor{cfg: Config{Kind: KindPod}, state: map[string]*taskState{"t": st}, gone: []*corev1.Pod{gonePod("old")}}
		e.handleGone(context.Background())
		if e.state["t"] != st {
			t.Fatalf("state %+v: the earlier pod's deletion dropped the run's state", *st)
		}
	}
	// The run's own pod deleted, but the run already settled: forgotten, no call.
	e := &Executor{cfg: Config{Kind: KindPod}, state: map[string]*taskState{"t": {uid: "new", done: true}}, gone: []*corev1.Pod{gonePod("new")}}
	e.handleGone(context.Background())
	if _, ok := e.state["t"]; ok {
		t.Fatal("the run's own pod's deletion kept its state")
	}
}
