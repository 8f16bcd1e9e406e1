package webui

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Worker utilisation, from workers.get_stats: the last hour by minute.

// statSeries is one utilisation metric of a worker.
type statSeries struct {
	// Last is the newest value, in percent.
	Last float64
	// Points draws the history in a 100×20 SVG box (a polyline).
	Points string
	// Label describes the series for screen readers and tooltips.
	Label string
}

// statItems are the metrics the UI shows: usage in percent, and memory as
// the used share of used plus free.
var statItems = []string{"cpu_usage", "gpu_usage", "memory_used", "memory_free", "gpu_memory_used", "gpu_memory_free"}

// workerStats returns, per worker, "cpu", "gpu", "memory" and "gpu_memory"
// series; a worker without reports has none (nor has any on a server
// without workers.get_stats).
func (u *UI) workerStats(ctx context.Context, s *session, ids []string) map[string]map[string]*statSeries {
	now := time.Now()
	var items []map[string]string
	for _, k := range statItems {
		items = append(items, map[string]string{"key": k, "category": "avg"})
	}
	var resp struct {
		Workers []struct {
			Worker  string `json:"worker"`
			Metrics []struct {
				Metric string `json:"metric"`
				Stats  []struct {
					Values []float64 `json:"values"`
				} `json:"stats"`
			} `json:"metrics"`
		} `json:"workers"`
	}
	err := s.call(ctx, "workers.get_stats", map[string]any{"worker_ids": ids, "from_date": now.Add(-time.Hour).Unix(),
		"to_date": now.Unix(), "interval": 60, "items": items}, &resp)
	out := map[string]map[string]*statSeries{}
	if err != nil {
		return out
	}
	for _, w := range resp.Workers {
		raw := map[string][]float64{}
		for _, m := range w.Metrics {
			if len(m.Stats) > 0 {
				raw[m.Metric] = m.Stats[0].Values
			}
		}
		series := map[string]*statSeries{}
		for _, name := range []string{"cpu", "gpu"} {
			if v := raw[name+"_usage"]; len(v) > 0 {
				series[name] = newSeries(v, strings.ToUpper(name)+" usage")
			}
		}
		for name, prefix := range map[string]string{"memory": "memory", "gpu_memory": "gpu_memory"} {
			used, free := raw[prefix+"_used"], raw[prefix+"_free"]
			if len(used) > 0 && len(used) == len(free) {
				pct := make([]float64, len(used))
				for i := range used {
					if total := used[i] + free[i]; total > 0 {
						pct[i] = 100 * used[i] / total
					}
				}
				series[name] = newSeries(pct, strings.ReplaceAll(strings.ToUpper(name[:1])+name[1:], "_", " ")+" used")
			}
		}
		out[w.Worker] = series
	}
	return out
}

// newSeries draws a percentage history as a sparkline.
func newSeries(values []float64, label string) *statSeries {
	var b strings.Builder
	if len(values) == 1 {
		values = []float64{values[0], values[0]} // one sample: a level line
	}
	n := len(values)
	for i, v := range values {
		x := 100.0
		if n > 1 {
			x = 100 * float64(i) / float64(n-1)
		}
		y := 20 - 20*min(max(v, 0), 100)/100
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	last := values[n-1]
	return &statSeries{Last: last, Points: strings.TrimSpace(b.String()),
		Label: fmt.Sprintf("%s: %.0f%% now; %d samples over the last hour", label, last, n)}
}
