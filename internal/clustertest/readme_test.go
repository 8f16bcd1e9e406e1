package clustertest

import (
	"os"
	"strings"
	"testing"
)

// The README's load balancer configuration is the one the cluster tests
// run, so what it shows is what was tested.
func TestClusterREADMEShowsTheTestedBalancer(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```haproxy\n")
	if !ok {
		t.Fatal("README has no haproxy configuration block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's haproxy block is not closed")
	}
	if want := haproxyConfig([]string{"replica1", "replica2", "replica3"}); block != want {
		t.Fatalf("README's haproxy configuration differs from the tested one; the tested one is:\n%s", want)
	}
}
