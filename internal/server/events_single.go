package server

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// Single values are scalars reported at the reserved iteration
// singleValueIter (the SDK's Logger.report_single_value, its "Summary"
// table). events.get_task_single_value_metrics lists them per task, the
// last value of each metric and variant (Task.get_reported_single_values).

func eventsGetTaskSingleValueMetrics(s *Server, c *call) (any, error) {
	var req struct {
		Tasks   api.StringList `json:"tasks"`
		Metrics []api.MetricVs `json:"metrics"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Tasks) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "tasks")
	}
	ids := slices.Compact(slices.Sorted(slices.Values(req.Tasks)))
	out := []map[string]any{}
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		for _, id := range ids {
			t, err := s.getTask(tx, c, id, api.ErrInvalidTaskID)
			if err != nil {
				return err
			}
			events, err := tx.Events(store.EventQuery{TaskID: id, Types: []string{"training_stats_scalar"}})
			if err != nil {
				return err
			}
			values := singleValues(events, req.Metrics)
			if len(values) > 0 {
				out = append(out, map[string]any{"task": id, "task_name": t.Name, "values": values})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"tasks": out}, nil
}

// singleValues picks the last single value of each metric and variant (of
// the wanted ones, when metrics is not empty), ordered by metric and variant.
func singleValues(events []store.Event, metrics []api.MetricVs) []map[string]any {
	last := map[[2]string]map[string]any{}
	for _, e := range events {
		if e.Iter != singleValueIter || !wantedMetric(metrics, e.Metric, e.Variant) {
			continue
		}
		var doc struct {
			Value *float64 `json:"value"`
		}
		if json.Unmarshal(e.Doc, &doc) != nil || doc.Value == nil {
			continue
		}
		last[[2]string{e.Metric, e.Variant}] = map[string]any{"metric": e.Metric, "variant": e.Variant,
			"value": *doc.Value, "timestamp": e.Timestamp}
	}
	keys := make([][2]string, 0, len(last))
	for k := range last {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	out := make([]map[string]any, len(keys))
	for i, k := range keys {
		out[i] = last[k]
	}
	return out
}

func wantedMetric(metrics []api.MetricVs, metric, variant string) bool {
	if len(metrics) == 0 {
		return true
	}
	for _, m := range metrics {
		if m.Metric == metric && (len(m.Variants) == 0 || slices.Contains(m.Variants, variant)) {
			return true
		}
	}
	return false
}
