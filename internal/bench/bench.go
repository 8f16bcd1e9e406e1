// Package bench runs the project's end-to-end benchmark scenarios: it
// starts the real clearml-agent binaries (server and daemons) on loopback,
// each scenario in its own temporary folder, drives them through the API
// as a ClearML client would, and reports the figures as a table or JSON.
// `go run ./cmd/agentbench` is its command; docs/benchmarks.md records
// its output.
//
// Every figure is taken from real processes: latencies from the server's
// own timestamps (enqueue, start) and the daemon's log-event timestamps
// (first line), CPU time and resident memory from /proc. Scenarios whose
// prerequisite is missing (PostgreSQL, a docker engine, a daemon feature)
// report why instead of a figure.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Options select what Run measures and with which binary.
type Options struct {
	Binary   string   // clearml-agent to run; "" builds one (CGO_ENABLED=0) from the module in the working directory
	Only     []string // scenario names; empty: all
	Quick    bool     // fewer iterations and shorter windows (about a minute in all)
	TempDir  string   // where scenario folders go; "" means os.TempDir()
	Logger   *slog.Logger
	Progress io.Writer // a line per scenario as it starts; nil: none
}

// Result is one figure, or the reason there is none (Skipped).
type Result struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit,omitempty"`
	N        int     `json:"n,omitempty"` // samples behind the figure
	Note     string  `json:"note,omitempty"`
	Skipped  string  `json:"skipped,omitempty"`
}

// Report is the outcome of one Run.
type Report struct {
	Machine Machine   `json:"machine"`
	Binary  string    `json:"binary"`
	Quick   bool      `json:"quick"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Results []Result  `json:"results"`
}

// runner is what a scenario gets: the binary, sizes and a folder root.
type runner struct {
	bin   string
	root  string
	quick bool
	log   *slog.Logger
}

// size picks the full or the quick value.
func (r *runner) size(full, quick int) int {
	if r.quick {
		return quick
	}
	return full
}

func (r *runner) window(full, quick time.Duration) time.Duration {
	if r.quick {
		return quick
	}
	return full
}

// scenario is one group of figures; run returns them, or an error that
// becomes a "failed" row.
type scenario struct {
	name string
	what string
	run  func(ctx context.Context, r *runner) ([]Result, error)
}

// Scenario names one selectable scenario.
type Scenario struct{ Name, What string }

var scenarios = []scenario{
	{"pickup", "enqueue to start of an idle daemon (long poll)", runPickup},
	{"first-line", "enqueue to the first line of a Python task: no requirements cold (empty caches) and warm, one requirement cold", runFirstLine},
	{"logs", "log shipping: throughput and lines lost, from a task printing many lines", runLogs},
	{"throughput", "trivial Python tasks per second through one daemon", runThroughput},
	{"abort", "tasks.stop to the task's process gone, a daemon running a Python task", runAbort},
	{"idle", "idle daemon: RSS and CPU", runIdle},
	{"queue", "server enqueue + dequeue pairs/s on SQLite and PostgreSQL", runQueue},
	{"workers", "server CPU for 1,000 simulated workers (polls and status reports)", runWorkers},
	{"lists", "tasks.get_all pages over 100,000 and 1,000,000 stored tasks, SQLite and PostgreSQL", runLists},
	{"docker", "enqueue to first line in docker mode (local busybox image) and in process mode", runDocker},
	{"services", "50 tasks at once in services mode: daemon RSS and CPU", runServices},
}

// Scenarios lists the scenarios in the order Run runs them.
func Scenarios() []Scenario {
	out := make([]Scenario, len(scenarios))
	for i, s := range scenarios {
		out[i] = Scenario{s.name, s.what}
	}
	return out
}

// Run builds (or takes) the binary, runs the selected scenarios one after
// the other and returns their figures. A scenario that fails is reported
// as a row and does not stop the others; ctx cancels the whole run.
func Run(ctx context.Context, o Options) (*Report, error) {
	for _, name := range o.Only {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == name }) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(names(), ", "))
		}
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	root, err := os.MkdirTemp(o.TempDir, "agentbench-")
	if err != nil {
		return nil, fmt.Errorf("creating the benchmark folder: %w", err)
	}
	defer os.RemoveAll(root)
	rep := &Report{Machine: readMachine(), Quick: o.Quick, Started: time.Now().UTC()}
	bin := o.Binary
	if bin == "" {
		fmt.Fprintln(progress, "building clearml-agent (CGO_ENABLED=0)")
		if bin, err = BuildBinary(ctx, root); err != nil {
			return nil, err
		}
		rep.Binary = "built from this checkout"
	} else {
		rep.Binary = bin
	}
	r := &runner{bin: bin, root: root, quick: o.Quick, log: lg}
	for _, s := range scenarios {
		if len(o.Only) > 0 && !slices.Contains(o.Only, s.name) {
			continue
		}
		fmt.Fprintf(progress, "running %s: %s\n", s.name, s.what)
		t := time.Now()
		res, err := s.run(ctx, r)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("running %s: %w", s.name, ctx.Err())
		}
		if err != nil {
			lg.Warn("scenario failed", "scenario", s.name, "err", err)
			res = append(res, Result{Scenario: s.name, Metric: "(scenario)", Skipped: "failed: " + oneLine(err.Error())})
		}
		for i := range res {
			res[i].Scenario = s.name
		}
		rep.Results = append(rep.Results, res...)
		lg.Info("scenario done", "scenario", s.name, "elapsed", time.Since(t).Round(time.Millisecond))
	}
	rep.Machine.LoadEnd = loadAvg()
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

func names() []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.name)
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// percentiles returns the nearest-rank p50, p99 and max of ds.
func percentiles(ds []time.Duration) (p50, p99, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(p float64) time.Duration {
		i := int(float64(len(s))*p+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return rank(0.50), rank(0.99), s[len(s)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latencyRows is the p50, p99 and max rows of one latency series.
func latencyRows(metric string, ds []time.Duration, note string) []Result {
	p50, p99, mx := percentiles(ds)
	return []Result{
		{Metric: metric + " p50", Value: ms(p50), Unit: "ms", N: len(ds), Note: note},
		{Metric: metric + " p99", Value: ms(p99), Unit: "ms", N: len(ds)},
		{Metric: metric + " max", Value: ms(mx), Unit: "ms", N: len(ds)},
	}
}
