// Package metrics exposes the daemon's health and Prometheus metrics on an
// optional local HTTP endpoint (agent.metrics_address, --metrics-address;
// off by default): /healthz answers 503 when the last successful queue poll
// or status report is too old, /metrics serves the Prometheus text format.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records what the daemon does. The zero value is not usable;
// call New. All methods are safe for concurrent use; a nil *Metrics
// records nothing, so callers need no checks.
type Metrics struct {
	reg        *prometheus.Registry
	polls      *prometheus.CounterVec
	pickups    prometheus.Counter
	tasks      *prometheus.CounterVec
	phases     *prometheus.HistogramVec
	logBytes   prometheus.Counter
	logFailed  prometheus.Counter
	running    prometheus.Gauge
	taskCPU    *prometheus.GaugeVec
	taskMemory *prometheus.GaugeVec
	reports    *prometheus.CounterVec

	lastPoll   atomic.Int64 // unix nanoseconds of the last successful poll
	lastReport atomic.Int64
	busy       atomic.Int64 // running tasks: no polls are expected then
	now        func() time.Time
}

// New creates the metrics.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), now: time.Now}
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearml_agent_polls_total",
		Help: "Queue polls (queues.get_next_task), by result: task, empty or error."}, []string{"result"})
	m.pickups = prometheus.NewCounter(prometheus.CounterOpts{Name: "clearml_agent_pickups_total", Help: "Tasks taken from a queue."})
	m.tasks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearml_agent_tasks_total",
		Help: "Tasks finished, by the status they were reported with."}, []string{"status"})
	m.phases = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "clearml_agent_task_phase_seconds",
		Help:    "Duration of task phases: setup (pull to process start), run (the process), finish (final status and log delivery).",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"phase"})
	m.logBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "clearml_agent_log_bytes_total", Help: "Task output bytes captured."})
	m.logFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "clearml_agent_log_send_failures_total", Help: "Failed log batch sends (retried)."})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "clearml_agent_running_tasks", Help: "Tasks running now."})
	m.taskCPU = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "clearml_agent_task_cpu_seconds",
		Help: "CPU time used so far by a running task's processes."}, []string{"task"})
	m.taskMemory = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "clearml_agent_task_memory_bytes",
		Help: "Resident memory of a running task's processes."}, []string{"task"})
	m.reports = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearml_agent_status_reports_total",
		Help: "workers.status_report calls, by result."}, []string{"result"})
	m.reg.MustRegister(m.polls, m.pickups, m.tasks, m.phases, m.logBytes, m.logFailed, m.running, m.taskCPU, m.taskMemory, m.reports,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Poll records one queue poll.
func (m *Metrics) Poll(gotTask bool, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.polls.WithLabelValues("error").Inc()
		return
	case gotTask:
		m.polls.WithLabelValues("task").Inc()
		m.pickups.Inc()
	default:
		m.polls.WithLabelValues("empty").Inc()
	}
	m.lastPoll.Store(m.now().UnixNano())
}

// Report records one status report.
func (m *Metrics) Report(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reports.WithLabelValues("error").Inc()
		return
	}
	m.reports.WithLabelValues("ok").Inc()
	m.lastReport.Store(m.now().UnixNano())
}

// TaskStarted and TaskFinished bracket a task.
func (m *Metrics) TaskStarted() {
	if m != nil {
		m.running.Inc()
		m.busy.Add(1)
	}
}

// TaskFinished records a finished task and its phase durations.
func (m *Metrics) TaskFinished(task, status string, setup, run, finish time.Duration) {
	if m == nil {
		return
	}
	m.running.Dec()
	m.busy.Add(-1)
	m.lastPoll.Store(m.now().UnixNano()) // polling resumes now
	m.tasks.WithLabelValues(status).Inc()
	m.phases.WithLabelValues("setup").Observe(setup.Seconds())
	m.phases.WithLabelValues("run").Observe(run.Seconds())
	m.phases.WithLabelValues("finish").Observe(finish.Seconds())
	m.taskCPU.DeleteLabelValues(task)
	m.taskMemory.DeleteLabelValues(task)
}

// TaskUsage records a running task's resource use.
func (m *Metrics) TaskUsage(task string, cpu time.Duration, rssBytes int64) {
	if m == nil {
		return
	}
	m.taskCPU.WithLabelValues(task).Set(cpu.Seconds())
	m.taskMemory.WithLabelValues(task).Set(float64(rssBytes))
}

// LogBytes counts captured output.
func (m *Metrics) LogBytes(n int) {
	if m != nil {
		m.logBytes.Add(float64(n))
	}
}

// LogSendFailed counts a failed log send.
func (m *Metrics) LogSendFailed() {
	if m != nil {
		m.logFailed.Inc()
	}
}

// Healthy reports whether a status report and, unless a task is running
// (the daemon does not poll then), a queue poll succeeded within maxAge (a
// fresh daemon counts from start).
func (m *Metrics) Healthy(start time.Time, maxAge time.Duration) error {
	now := m.now()
	check := func(what string, last int64) error {
		t := start
		if last != 0 {
			t = time.Unix(0, last)
		}
		if age := now.Sub(t); age > maxAge {
			return fmt.Errorf("no successful %s for %v", what, age.Round(time.Second))
		}
		return nil
	}
	var pollErr error
	if m.busy.Load() == 0 {
		pollErr = check("queue poll", m.lastPoll.Load())
	}
	return errors.Join(pollErr, check("status report", m.lastReport.Load()))
}

// Server serves /healthz and /metrics.
type Server struct {
	m      *Metrics
	start  time.Time
	maxAge time.Duration
	log    *slog.Logger
	ln     net.Listener
	hs     *http.Server
	wg     sync.WaitGroup
}

// Listen binds addr ("127.0.0.1:9090"); maxAge is the health threshold.
func Listen(addr string, m *Metrics, maxAge time.Duration, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: listening on %s: %w", addr, err)
	}
	s := &Server{m: m, start: m.now(), maxAge: maxAge, log: log, ln: ln}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Healthy(s.start, s.maxAge); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() {
		if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", "err", err)
		}
	})
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint and waits for it.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.hs.Shutdown(ctx)
	s.wg.Wait()
}
