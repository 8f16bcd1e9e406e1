package metrics

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestHealthy(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m := New()
	m.now = func() time.Time { return now }
	start := now
	if err := m.Healthy(start, time.Minute); err != nil {
		t.Fatalf("fresh daemon unhealthy: %v", err)
	}
	m.Poll(false, nil)
	m.Report(nil)
	now = now.Add(50 * time.Second)
	if err := m.Healthy(start, time.Minute); err != nil {
		t.Fatalf("unhealthy after 50 s: %v", err)
	}
	now = now.Add(20 * time.Second)
	err := m.Healthy(start, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "queue poll") || !strings.Contains(err.Error(), "status report") {
		t.Fatalf("stale daemon: %v", err)
	}
	// A failed report does not count as fresh; a running task excuses polls.
	m.Report(errors.New("boom"))
	m.TaskStarted()
	m.Report(nil)
	if err := m.Healthy(start, time.Minute); err != nil {
		t.Fatalf("busy daemon with fresh report: %v", err)
	}
	var nilM *Metrics
	nilM.Poll(true, nil) // a nil *Metrics records nothing and does not panic
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	m := New()
	m.Poll(true, nil)
	m.Poll(false, nil)
	m.Poll(false, errors.New("down"))
	m.Report(nil)
	m.TaskStarted()
	m.LogBytes(1234)
	m.TaskUsage("t1", 3*time.Second, 1<<20)
	s, err := Listen("127.0.0.1:0", m, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	value := func(name string, label ...string) float64 {
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no %s", name)
		}
		for _, mm := range f.Metric {
			match := len(label) == 0
			for _, l := range mm.Label {
				if len(label) == 2 && l.GetName() == label[0] && l.GetValue() == label[1] {
					match = true
				}
			}
			if match {
				switch {
				case mm.Counter != nil:
					return mm.Counter.GetValue()
				case mm.Gauge != nil:
					return mm.Gauge.GetValue()
				}
			}
		}
		t.Fatalf("no %s%v", name, label)
		return 0
	}
	checks := []struct {
		name  string
		label []string
		want  float64
	}{
		{"clearml_agent_polls_total", []string{"result", "task"}, 1},
		{"clearml_agent_polls_total", []string{"result", "empty"}, 1},
		{"clearml_agent_polls_total", []string{"result", "error"}, 1},
		{"clearml_agent_pickups_total", nil, 1},
		{"clearml_agent_running_tasks", nil, 1},
		{"clearml_agent_log_bytes_total", nil, 1234},
		{"clearml_agent_task_cpu_seconds", []string{"task", "t1"}, 3},
		{"clearml_agent_task_memory_bytes", []string{"task", "t1"}, 1 << 20},
	}
	for _, c := range checks {
		if got := value(c.name, c.label...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	h, err := http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	h.Body.Close()
	if h.StatusCode != 200 {
		t.Fatalf("/healthz = %d", h.StatusCode)
	}
}
