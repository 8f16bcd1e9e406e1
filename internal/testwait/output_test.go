package testwait

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOutputReadWhileWritten: a test waits on an Output that a process's
// copy goroutine and other writers fill meanwhile; every write lands whole
// (under -race, a plain buffer fails this test).
func TestOutputReadWhileWritten(t *testing.T) {
	t.Parallel()
	var out Output
	cmd := exec.Command("sh", "-c", `for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; done`)
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Skipf("needs sh: %v", err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&out, "writer %d %d\n", w, i)
			}
		})
	}
	if !For(time.Minute, func() bool { return strings.Contains(out.String(), "line 10\n") }) {
		t.Fatalf("no last line in %q", out.String())
	}
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 10+4*100 {
		t.Fatalf("%d lines, want %d", len(lines), 10+4*100)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "line ") && !strings.HasPrefix(l, "writer ") {
			t.Fatalf("a write did not land whole: %q", l)
		}
	}
}
