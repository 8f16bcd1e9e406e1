package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoFullKubernetesClientset keeps client-go's generated clientset and
// informer factory out of the binary. Their packages register every
// built-in Kubernetes API type when a process starts: it doubled the size
// of the binary and added 17 MiB to the resident memory of every daemon,
// task supervisor and execute child, none of which talk to Kubernetes.
// The Kubernetes executor uses the two API groups it needs through
// internal/k8s.NewKube.
func TestNoFullKubernetesClientset(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed %d packages; expected the whole program", len(deps))
	}
	for _, p := range deps {
		if p == "k8s.io/client-go/kubernetes" || strings.HasPrefix(p, "k8s.io/client-go/kubernetes/") ||
			p == "k8s.io/client-go/informers" || strings.HasPrefix(p, "k8s.io/client-go/informers/") {
			t.Errorf("the binary links %s", p)
		}
	}
}
