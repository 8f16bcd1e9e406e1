package agent_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
)

// BenchmarkFirstUserLine measures enqueue to the task's first line of
// output (the log event's timestamp, taken when the daemon read the line)
// for a literal-script task: without requirements, with 5 requirements
// whose environment is not cached yet (cold: each iteration pins new
// versions), and with the same 5 requirements again (warm).
func BenchmarkFirstUserLine(b *testing.B) {
	e := newEnv(b)
	links := b.TempDir()
	const versions = 12
	for p := range 5 {
		for v := range versions {
			name := fmt.Sprintf("benchpkg%d", p)
			if _, err := testbin.BuildWheel(links, name, fmt.Sprintf("1.%d", v), map[string]string{name + ".py": "VALUE = 1\n"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	env := append(e.daemonEnv(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+links,
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH="+filepath.Join(e.dir, "venvs"))
	testbin.Start(b, env, "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default", "--foreground")
	reqs := func(v int) string {
		var lines []string
		for p := range 5 {
			lines = append(lines, fmt.Sprintf("benchpkg%d==1.%d", p, v))
		}
		return strings.Join(lines, "\n") + "\n"
	}
	// Build the pip seed and the empty environment once, as a machine that
	// has run a task before has them.
	firstLine(b, e, "")
	firstLine(b, e, reqs(versions-1))
	for _, tc := range []struct {
		name string
		reqs func(i int) string
	}{
		{"no-requirements", func(int) string { return "" }},
		{"5-requirements-cold", func(i int) string { return reqs(i % (versions - 1)) }},
		{"5-requirements-warm", func(int) string { return reqs(versions - 1) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ds []time.Duration
			for i := range b.N {
				ds = append(ds, firstLine(b, e, tc.reqs(i)))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), "first-line-p50-ms")
		})
	}
}

func firstLine(b *testing.B, e *env, reqs string) time.Duration {
	b.Helper()
	script := map[string]any{"binary": "python3", "entry_point": "t.py", "diff": "print('FIRST LINE', flush=True)\n"}
	if reqs != "" {
		script["requirements"] = map[string]any{"pip": reqs}
	}
	return firstLineOf(b, e, script)
}
