package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/testbin"
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

// TestLightPackageInit keeps the initialisation of this module's packages
// small: every process of the binary (a daemon, each task's supervisor and
// execute child) runs it, and on a virtual machine each page it touches
// costs a page fault. Compiled expressions are made on first use
// (sync.OnceValue), not when the process starts. GODEBUG=inittrace=1
// reports the bytes each package's initialisation allocates.
func TestLightPackageInit(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(testbin.Path(t), "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clearml-agent --version: %v\n%s", err, out)
	}
	const limit = 32 << 10
	ours := 0
	for _, line := range strings.Split(string(out), "\n") {
		// init <package> @<t> ms, <t> ms clock, <bytes> bytes, <n> allocs
		f := strings.Fields(line)
		if len(f) < 11 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		if !strings.HasPrefix(f[1], "github.com/goclearml/agent/") {
			continue
		}
		ours++
		if n, err := strconv.Atoi(f[7]); err != nil {
			t.Errorf("reading %q: %v", line, err)
		} else if n > limit {
			t.Errorf("%s allocates %d bytes when a process starts (at most %d): make what it builds on first use", f[1], n, limit)
		}
	}
	if ours == 0 {
		t.Fatalf("no initialisation of this module's packages in the trace:\n%s", out)
	}
}
