package server

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// Worker statistics history: every status report's machine_stats is kept
// for workerStatsKeep, and workers.get_stats aggregates them by interval,
// as the reference does from its Elasticsearch copy. The web UI draws the
// workers' utilisation from it.

const workerStatsKeep = 24 * time.Hour

// maxStatsBuckets bounds the intervals of one workers.get_stats answer.
const maxStatsBuckets = 10000

// recordWorkerStats keeps a status report's machine statistics.
func recordWorkerStats(tx store.Tx, company, worker string, now time.Time, stats map[string]any) error {
	if len(stats) == 0 {
		return nil
	}
	b, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("encoding machine statistics: %w", err)
	}
	return tx.AddWorkerStats(company, worker, now, b, now.Add(-workerStatsKeep))
}

type statItem struct {
	Key      string `json:"key"`
	Category string `json:"category"`
}

func workersGetStats(s *Server, c *call) (any, error) {
	var req struct {
		WorkerIDs      []string   `json:"worker_ids"`
		FromDate       *float64   `json:"from_date"`
		ToDate         *float64   `json:"to_date"`
		Interval       *int64     `json:"interval"`
		Items          []statItem `json:"items"`
		SplitByVariant bool       `json:"split_by_variant"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	for name, missing := range map[string]bool{"from_date": req.FromDate == nil, "to_date": req.ToDate == nil,
		"interval": req.Interval == nil, "items": len(req.Items) == 0} {
		if missing {
			return nil, api.ErrMissingRequiredFields.New("", "field", name)
		}
	}
	from, to, interval := *req.FromDate, *req.ToDate, *req.Interval
	if interval < 1 {
		return nil, api.ErrValidation.New("interval must be at least 1")
	}
	if to < from || math.IsInf(to-from, 0) || (to-from)/float64(interval) > maxStatsBuckets {
		return nil, api.ErrValidation.New(fmt.Sprintf("from_date must not be after to_date, and they may span at most %d intervals", maxStatsBuckets))
	}
	var keys []string
	categories := map[string][]string{}
	for _, it := range req.Items {
		if !slices.Contains([]string{"avg", "min", "max"}, it.Category) {
			return nil, api.ErrValidation.New("category must be avg, min or max", "category", it.Category)
		}
		if _, ok := categories[it.Key]; !ok {
			keys = append(keys, it.Key)
		}
		if !slices.Contains(categories[it.Key], it.Category) {
			categories[it.Key] = append(categories[it.Key], it.Category)
		}
	}
	var rows []store.WorkerStat
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		rows, err = tx.WorkerStats(c.ident.Company, req.WorkerIDs, time.UnixMilli(int64(from*1000)), time.UnixMilli(int64(to*1000)))
		return err
	})
	if err != nil {
		return nil, err
	}
	// values[worker][key][variant][bucket] are the reported values.
	values := map[string]map[string]map[string]map[int64][]float64{}
	for _, r := range rows {
		var stats map[string]any
		if json.Unmarshal(r.Stats, &stats) != nil {
			continue
		}
		bucket := r.Time.Unix() / interval * interval
		for _, key := range keys {
			for variant, v := range statValues(stats[key]) {
				if !req.SplitByVariant {
					variant = ""
				}
				w := values[r.Worker]
				if w == nil {
					w = map[string]map[string]map[int64][]float64{}
					values[r.Worker] = w
				}
				if w[key] == nil {
					w[key] = map[string]map[int64][]float64{}
				}
				if w[key][variant] == nil {
					w[key][variant] = map[int64][]float64{}
				}
				w[key][variant][bucket] = append(w[key][variant][bucket], v...)
			}
		}
	}
	workers := req.WorkerIDs
	if len(workers) == 0 {
		for w := range values {
			workers = append(workers, w)
		}
		sort.Strings(workers)
	}
	out := []map[string]any{}
	for _, w := range workers {
		if values[w] == nil {
			continue
		}
		metrics := []map[string]any{}
		for _, key := range keys {
			variants := make([]string, 0, len(values[w][key]))
			for v := range values[w][key] {
				variants = append(variants, v)
			}
			sort.Slice(variants, func(i, j int) bool { return variantLess(variants[i], variants[j]) })
			for _, variant := range variants {
				metrics = append(metrics, aggregateStats(key, variant, values[w][key][variant], categories[key]))
			}
		}
		out = append(out, map[string]any{"worker": w, "metrics": metrics})
	}
	return map[string]any{"workers": out}, nil
}

// statValues reads one statistic: a number, or a list of numbers (one per
// core or GPU, its variants "0", "1", ...).
func statValues(v any) map[string][]float64 {
	switch x := v.(type) {
	case float64:
		return map[string][]float64{"": {x}}
	case []any:
		out := map[string][]float64{}
		for i, e := range x {
			if f, ok := e.(float64); ok {
				out[strconv.Itoa(i)] = append(out[strconv.Itoa(i)], f)
			}
		}
		return out
	}
	return nil
}

func variantLess(a, b string) bool {
	ai, aerr := strconv.Atoi(a)
	bi, berr := strconv.Atoi(b)
	if aerr == nil && berr == nil {
		return ai < bi
	}
	return a < b
}

// aggregateStats is one metric's dates (bucket starts, in seconds) and
// its values per category.
func aggregateStats(key, variant string, buckets map[int64][]float64, categories []string) map[string]any {
	dates := make([]int64, 0, len(buckets))
	for d := range buckets {
		dates = append(dates, d)
	}
	slices.Sort(dates)
	stats := []map[string]any{}
	for _, cat := range categories {
		vals := make([]float64, len(dates))
		for i, d := range dates {
			vs := buckets[d]
			switch cat {
			case "min":
				vals[i] = slices.Min(vs)
			case "max":
				vals[i] = slices.Max(vs)
			default:
				mean := 0.0
				for k, v := range vs {
					mean = addToMean(mean, float64(k), v)
				}
				vals[i] = mean
			}
		}
		stats = append(stats, map[string]any{"aggregation": cat, "values": vals})
	}
	m := map[string]any{"metric": key, "dates": dates, "stats": stats}
	if variant != "" {
		m["variant"] = variant
	}
	return m
}
