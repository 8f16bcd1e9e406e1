package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{0.001234, "0.0012"},
		{1.234, "1.23"},
		{12.34, "12.3"},
		{123.4, "123"},
		{1234567, "1,234,567"},
		{-4321, "-4,321"},
	} {
		if got := formatValue(tc.in); got != tc.want {
			t.Errorf("formatValue(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		in            []time.Duration
		p50, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"unsorted", ms(5, 1, 4, 2, 3), 3 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
		{"hundred", ms(seq(1, 100)...), 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
	} {
		p50, p99, mx := percentiles(tc.in)
		if p50 != tc.p50 || p99 != tc.p99 || mx != tc.max {
			t.Errorf("%s: p50 %v p99 %v max %v, want %v %v %v", tc.name, p50, p99, mx, tc.p50, tc.p99, tc.max)
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestCountLines(t *testing.T) {
	ev := func(ts float64, stored string, lines ...string) map[string]any {
		return map[string]any{"timestamp": ts, "@timestamp": stored, "msg": strings.Join(lines, "\n")}
	}
	events := []map[string]any{
		ev(1000, "2026-01-01T00:00:01.500000+00:00", "line 0000000 x", "line 0000001 x"),
		ev(1001, "2026-01-01T00:00:01.600000+00:00", "task pulled from queue"),
		ev(1002, "2026-01-01T00:00:01.700000+00:00", "line 0000001 x", "line 0000003 x", "line 9999999 out of range"),
	}
	c := countLines(events, 4)
	if c.seen != 4 || c.unique != 3 || c.events != 2 {
		t.Fatalf("seen %d unique %d events %d, want 4 3 2 (line 2 missing, line 1 twice)", c.seen, c.unique, c.events)
	}
	if !c.first.Equal(time.UnixMilli(1000)) || !c.last.Equal(time.Date(2026, 1, 1, 0, 0, 1, 700e6, time.UTC)) {
		t.Fatalf("first %v last %v", c.first, c.last)
	}
}

func TestReportRendering(t *testing.T) {
	rep := &Report{
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", MemoryGiB: 24, Kernel: "6.1.0", OS: "linux/amd64", Go: "go1.26", LoadStart: "0.10 0.20 0.30", LoadEnd: "1.00 0.50 0.40"},
		Binary:  "built from this checkout", Quick: true, Seconds: 61,
		Results: []Result{
			{Scenario: "pickup", Metric: "enqueue to start p50", Value: 2, Unit: "ms", N: 30, Note: "server timestamps"},
			{Scenario: "queue", Metric: "sqlite: pairs/s", Value: 1637.4, Unit: "pairs/s", N: 4000},
			{Scenario: "services", Metric: "50 tasks running: daemon RSS", Skipped: servicesUnavailable},
		},
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	for _, want := range []string{
		"machine: 2 CPUs (Test CPU), 24.0 GiB memory, kernel 6.1.0, linux/amd64, go1.26\n",
		"load average (1/5/15 min): 0.10 0.20 0.30 at start, 1.00 0.50 0.40 at end\n",
		"binary: built from this checkout; quick run, 61 s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for name, want := range map[string][]string{
		"scenario": {"scenario", "metric", "value", "unit", "n", "note"},
		"pickup":   {"pickup", "enqueue", "to", "start", "p50", "2.00", "ms", "30", "server", "timestamps"},
		"queue":    {"queue", "sqlite:", "pairs/s", "1,637", "pairs/s", "4000"},
		"services": append([]string{"services", "50", "tasks", "running:", "daemon", "RSS", "-"}, strings.Fields(servicesUnavailable)...),
	} {
		if !reflect.DeepEqual(rows[name], want) {
			t.Errorf("row %s: %q, want %q", name, rows[name], want)
		}
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v\n%s", err, js.String())
	}
	if !reflect.DeepEqual(back.Results, rep.Results) || back.Machine != rep.Machine {
		t.Fatalf("JSON round trip:\n%+v\nwant\n%+v", back, rep)
	}
	if !strings.Contains(js.String(), `"skipped": "not available: --services-mode not supported by this build"`) {
		t.Errorf("JSON lacks the skipped reason:\n%s", js.String())
	}
}

func TestRunUnknownScenario(t *testing.T) {
	_, err := Run(context.Background(), Options{Only: []string{"pickup", "nosuch"}, Binary: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "nosuch"`) || !strings.Contains(err.Error(), "pickup, first-line") {
		t.Fatalf("Run with an unknown scenario: %v", err)
	}
}

// TestRunPickupQuick runs one real scenario end to end: the binary built
// from this checkout, a server and a daemon on loopback, ten tasks.
func TestRunPickupQuick(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the scenarios read /proc")
	}
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := Options{Only: []string{"pickup"}, Quick: true, TempDir: t.TempDir(), Binary: os.Getenv("CLEARML_AGENT_TEST_BINARY")}
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	if len(rep.Results) != 3 {
		t.Fatalf("pickup gave %d rows, want p50, p99 and max", len(rep.Results))
	}
	p50, p99, mx := rep.Results[0], rep.Results[1], rep.Results[2]
	for _, r := range rep.Results {
		if r.Scenario != "pickup" || r.Skipped != "" || r.N != 10 || r.Unit != "ms" || r.Value < 0 {
			t.Fatalf("row %+v", r)
		}
	}
	if !(p50.Value <= p99.Value && p99.Value <= mx.Value) || mx.Value > 60_000 {
		t.Fatalf("p50 %v p99 %v max %v", p50.Value, p99.Value, mx.Value)
	}
	if rep.Machine.CPUs < 1 || rep.Machine.Kernel == "" || rep.Seconds <= 0 {
		t.Fatalf("machine %+v, %v s", rep.Machine, rep.Seconds)
	}
	if entries, _ := os.ReadDir(o.TempDir); len(entries) != 0 {
		t.Fatalf("Run left %d entries in its folder", len(entries))
	}
}
