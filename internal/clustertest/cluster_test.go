package clustertest

import (
	"context"
	"testing"
	"time"
)

// The deployment works as deployed: a task submitted through the load
// balancer runs on each daemon host's queue and its log arrives.
func TestClusterRunsTasksThroughTheBalancer(t *testing.T) {
	b := bed(t)
	c := b.Client(t)
	ctx := context.Background()
	for _, q := range []string{workQueue, cutQueue, frozenQueue} {
		id, err := shTask(ctx, c, "smoke "+q, q, "echo hello from $(hostname)\n")
		if err != nil {
			t.Fatal(err)
		}
		if tk := waitStatus(t, c, id, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
			t.Fatalf("task on %s: %s %q", q, tk.Status, tk.StatusReason)
		}
		found := false
		for _, l := range logLines(t, c, id) {
			found = found || l == "hello from "+b.prefix+"-"+map[string]string{workQueue: "d", cutQueue: "d3", frozenQueue: "d4"}[q] ||
				(q == workQueue && (l == "hello from "+b.Daemons["d1"] || l == "hello from "+b.Daemons["d2"]))
		}
		if !found {
			t.Fatalf("task on %s: no hello line in its log:\n%v", q, logLines(t, c, id))
		}
	}
}
