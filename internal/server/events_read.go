package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// readableTask checks that a task exists for the event readers.
func (s *Server) readableTask(tx store.Tx, c *call, id string) error {
	if id == "" {
		return api.ErrMissingRequiredFields.New("", "field", "task")
	}
	_, err := s.getTask(tx, c, id, api.ErrInvalidTaskID)
	return err
}

func eventDocs(events []store.Event) []map[string]any {
	out := make([]map[string]any, 0, len(events))
	for _, e := range events {
		m := map[string]any{}
		d := json.NewDecoder(bytes.NewReader(e.Doc))
		d.UseNumber()
		if err := d.Decode(&m); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// batchSize validates an events batch_size: def when absent, at most 10,000.
func batchSize(v *int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 1 {
		return 0, api.ErrValidation.New("batch_size must be at least 1")
	}
	return min(*v, 10000), nil
}

func eventsGetTaskLog(s *Server, c *call) (any, error) {
	var req api.TaskLogRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	batch, err := batchSize(req.BatchSize, 5000)
	if err != nil {
		return nil, err
	}
	if req.Order != "" && req.Order != "asc" && req.Order != "desc" {
		return nil, api.ErrValidation.New("order must be asc or desc")
	}
	earlier := req.NavigateEarlier == nil || *req.NavigateEarlier
	q := store.EventQuery{TaskID: req.Task, Types: []string{"log"}, Desc: earlier, Limit: batch}
	if req.FromTimestamp != nil {
		q.After = &store.EventCursor{Timestamp: int64(*req.FromTimestamp)}
	}
	var events []store.Event
	total := 0
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		if err := s.readableTask(tx, c, req.Task); err != nil {
			return err
		}
		var err error
		if events, err = tx.Events(q); err != nil {
			return err
		}
		// Events that share the last timestamp all go in this batch, so
		// that a client continuing from that timestamp misses none. They
		// are read a few at a time: most logs have no such ties.
		for step := 16; len(events) >= batch && len(events) < batch+10000; step = min(step*4, 10000) {
			last := events[len(events)-1]
			more, err := tx.Events(store.EventQuery{TaskID: req.Task, Types: q.Types, Desc: earlier,
				After: &store.EventCursor{Timestamp: last.Timestamp, Seq: last.Seq}, Limit: step})
			if err != nil {
				return err
			}
			tied := 0
			for _, e := range more {
				if e.Timestamp != last.Timestamp {
					break
				}
				tied++
			}
			events = append(events, more[:tied]...)
			if tied < len(more) || len(more) < step {
				break
			}
		}
		// The answer's total is at most 10,000 (as the reference's): count
		// no further, which a log of a million lines would make slow.
		total, err = tx.CountEventsMax(req.Task, q.Types, 10000)
		return err
	})
	if err != nil {
		return nil, err
	}
	docs := eventDocs(events)
	if (earlier && req.Order == "asc") || (!earlier && req.Order == "desc") {
		slices.Reverse(docs)
	}
	return api.TaskLogResponse{Events: docs, Returned: len(docs), Total: min(total, 10000)}, nil
}

func eventsGetTaskEvents(s *Server, c *call) (any, error) {
	var req api.TaskEventsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	batch, err := batchSize(req.BatchSize, 500)
	if err != nil {
		return nil, err
	}
	desc := req.Order == "desc"
	q := store.EventQuery{TaskID: req.Task, Desc: desc, Limit: batch}
	if req.EventType != "" {
		q.Types = []string{req.EventType}
	}
	if req.ScrollID != "" {
		var cur store.EventCursor
		if _, err := fmt.Sscanf(req.ScrollID, "%d:%d", &cur.Timestamp, &cur.Seq); err != nil || cur.Seq <= 0 {
			return nil, api.ErrValidation.New("invalid scroll_id", "scroll_id", req.ScrollID)
		}
		q.After = &cur
	}
	var events []store.Event
	total := 0
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		if err := s.readableTask(tx, c, req.Task); err != nil {
			return err
		}
		var err error
		if events, err = tx.Events(q); err != nil {
			return err
		}
		total, err = tx.CountEvents(req.Task, q.Types)
		return err
	})
	if err != nil {
		return nil, err
	}
	scroll := req.ScrollID
	if len(events) > 0 {
		last := events[len(events)-1]
		scroll = fmt.Sprintf("%d:%d", last.Timestamp, last.Seq)
	}
	docs := eventDocs(events)
	return api.TaskEventsResponse{Events: docs, Returned: len(docs), Total: total, ScrollID: scroll}, nil
}

// scalarSeries reads every scalar point of a task grouped by metric and variant.
func (s *Server) scalarSeries(c *call, task string) (map[string]map[string][]store.Event, error) {
	var events []store.Event
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		if err := s.readableTask(tx, c, task); err != nil {
			return err
		}
		var err error
		events, err = tx.Events(store.EventQuery{TaskID: task, Types: []string{"training_stats_scalar"}})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string][]store.Event{}
	for _, e := range events {
		if out[e.Metric] == nil {
			out[e.Metric] = map[string][]store.Event{}
		}
		out[e.Metric][e.Variant] = append(out[e.Metric][e.Variant], e)
	}
	return out, nil
}

func eventsScalarHistogram(s *Server, c *call) (any, error) {
	var req api.ScalarHistogramRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	samples := 2000
	if req.Samples != nil {
		if *req.Samples < 1 {
			return nil, api.ErrValidation.New("samples must be at least 1")
		}
		samples = min(*req.Samples, 6000)
	}
	if req.Key != "" && !slices.Contains([]string{"iter", "timestamp", "iso_time"}, req.Key) {
		return nil, api.ErrValidation.New("key must be iter, timestamp or iso_time")
	}
	series, err := s.scalarSeries(c, req.Task)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for metric, variants := range series {
		mv := map[string]any{}
		for variant, events := range variants {
			var xs, ys []float64
			label := ""
			for _, e := range events {
				if e.Iter == singleValueIter {
					continue
				}
				var doc struct {
					Value      *float64 `json:"value"`
					XAxisLabel string   `json:"x_axis_label"`
				}
				if json.Unmarshal(e.Doc, &doc) != nil || doc.Value == nil {
					continue
				}
				x := float64(e.Iter)
				if req.Key == "timestamp" || req.Key == "iso_time" {
					x = float64(e.Timestamp)
				}
				xs, ys = append(xs, x), append(ys, *doc.Value)
				if doc.XAxisLabel != "" {
					label = doc.XAxisLabel
				}
			}
			if len(xs) == 0 {
				continue
			}
			xs, ys = downsample(xs, ys, samples)
			entry := map[string]any{"name": variant, "x": xs, "y": ys}
			if label != "" {
				entry["x_axis_label"] = label
			}
			mv[variant] = entry
		}
		if len(mv) > 0 {
			out[metric] = mv
		}
	}
	return out, nil
}

// downsample sorts the points by x and averages them into at most n
// equal-width buckets.
func downsample(xs, ys []float64, n int) ([]float64, []float64) {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	sx, sy := make([]float64, len(xs)), make([]float64, len(ys))
	for i, j := range idx {
		sx[i], sy[i] = xs[j], ys[j]
	}
	if len(sx) <= n {
		return sx, sy
	}
	lo, hi := sx[0], sx[len(sx)-1]
	bucket := func(x float64) int {
		if hi == lo {
			return 0
		}
		return min(int((x-lo)/(hi-lo)*float64(n)), n-1)
	}
	var ox, oy []float64
	for i := 0; i < len(sx); {
		b := bucket(sx[i])
		var meanX, meanY float64
		k := 0
		for ; i < len(sx) && bucket(sx[i]) == b; i++ {
			meanX, meanY, k = addToMean(meanX, float64(k), sx[i]), addToMean(meanY, float64(k), sy[i]), k+1
		}
		ox, oy = append(ox, meanX), append(oy, meanY)
	}
	return ox, oy
}

// addToMean returns the mean of count values averaging mean plus v. Unlike
// (mean*count+v)/(count+1) it cannot overflow to ±Inf on large finite
// values, which JSON cannot carry (the response or the stored task would
// fail to encode).
func addToMean(mean, count, v float64) float64 {
	n := count + 1
	r := mean*(count/n) + v/n
	if math.IsInf(r, 0) {
		r = math.Copysign(math.MaxFloat64, r)
	}
	return r
}

func eventsMetricsAndVariants(s *Server, c *call) (any, error) {
	var req api.TaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	series, err := s.scalarSeries(c, req.Task)
	if err != nil {
		return nil, err
	}
	metrics := map[string]any{}
	for metric, variants := range series {
		mv := map[string]any{}
		for variant := range variants {
			mv[variant] = map[string]any{"name": variant}
		}
		metrics[metric] = mv
	}
	return map[string]any{"metrics": metrics}, nil
}

func eventsDeleteForTask(s *Server, c *call) (any, error) {
	var req api.TaskRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	deleted := 0
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		if err := s.readableTask(tx, c, req.Task); err != nil {
			return err
		}
		var err error
		deleted, err = tx.DeleteEvents(req.Task)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	// The reference declares a boolean: whether events were deleted.
	return map[string]any{"deleted": deleted > 0}, nil
}
