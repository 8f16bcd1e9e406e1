package k8s_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// BenchmarkK8sStartLatency measures, on the test cluster (the test node
// runs pods on the local Docker engine), the time from a task's enqueue
// to its pod's creation (the executor's part), to the pod Running (the
// node's part added: the init container, then the task's container), and
// to the task's first log line in the server (the in-pod agent's part
// added). Medians.
// One task at a time, an idle executor on one queue.
//
//	go test -run '^$' -bench K8sStartLatency -benchtime 10x ./internal/k8s/
func BenchmarkK8sStartLatency(b *testing.B) {
	e := newKEnv(b, nil)
	e.createQueue("bench")
	p := e.executor("agent.k8s.keep_finished_sec: 0", "--queue", "bench")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := e.cluster.Admin.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	running, created := make(chan string, 64), make(chan string, 64)
	go func() {
		seen := map[string]bool{}
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if ok && ev.Type == watch.Added {
				created <- pod.Name
			}
			if ok && ev.Type == watch.Modified && pod.Status.Phase == corev1.PodRunning && !seen[pod.Name] {
				seen[pod.Name] = true
				running <- pod.Name
			}
		}
	}()
	var toCreated, toRunning, toLine []time.Duration
	run := func() {
		start := time.Now()
		id := e.task(nil, "bench task", "bench", "echo first-line-$CLEARML_TASK_ID", nil)
		if name := <-created; name != "clearml-id-"+id {
			b.Fatalf("pod %s created, want the one of %s", name, id)
		}
		toCreated = append(toCreated, time.Since(start))
		name := <-running
		if name != "clearml-id-"+id {
			b.Fatalf("pod %s running, want the one of %s", name, id)
		}
		toRunning = append(toRunning, time.Since(start))
		e.waitFor(60*time.Second, "first line", func() bool { return strings.Contains(e.log(id), "first-line-"+id) },
			func() string { return p.Output() })
		toLine = append(toLine, time.Since(start))
		e.waitStatus(id, 60*time.Second, p, "completed", "failed")
	}
	run() // warm-up: images and caches
	toCreated, toRunning, toLine = nil, nil, nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	b.ReportMetric(median(toCreated).Seconds()*1000, "ms-to-pod-created")
	b.ReportMetric(median(toRunning).Seconds()*1000, "ms-to-running")
	b.ReportMetric(median(toLine).Seconds()*1000, "ms-to-first-line")
	b.ReportMetric(0, "ns/op")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
