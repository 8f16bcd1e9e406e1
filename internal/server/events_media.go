package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// The readers of plots and debug images (the SDK's get_reported_plots and
// get_debug_samples). Their scroll ids carry the whole cursor, so any
// replica can continue a scroll that another one started.

// readableOwner checks the task (or, for model events, the model) exists.
func (s *Server) readableOwner(tx store.Tx, c *call, id string, model bool) error {
	if !model {
		return s.readableTask(tx, c, id)
	}
	_, err := s.getModel(tx, c, id)
	return err
}

// maxMediaEvents caps one answer of the plot reader.
const maxMediaEvents = 10000

func eventsGetTaskPlots(s *Server, c *call) (any, error) {
	var req api.TaskPlotsRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	iters := 1
	if req.Iters != nil {
		if *req.Iters < 1 {
			return nil, api.ErrValidation.New("iters must be at least 1")
		}
		iters = *req.Iters
	}
	offset := 0
	if req.ScrollID != "" {
		if _, err := fmt.Sscanf(req.ScrollID, "p%d", &offset); err != nil || offset < 0 {
			return nil, api.ErrValidation.New("invalid scroll_id", "scroll_id", req.ScrollID)
		}
	}
	var events []store.Event
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		if err := s.readableOwner(tx, c, req.Task, req.ModelEvents); err != nil {
			return err
		}
		var err error
		events, err = tx.Events(store.EventQuery{TaskID: req.Task, Types: []string{"plot"}})
		return err
	})
	if err != nil {
		return nil, err
	}
	wanted := func(e store.Event) bool {
		if len(req.Metrics) == 0 {
			return true
		}
		return slices.ContainsFunc(req.Metrics, func(m api.MetricVs) bool {
			return m.Metric == e.Metric && (len(m.Variants) == 0 || slices.Contains(m.Variants, e.Variant))
		})
	}
	// The last iters iterations of every plot (metric and variant).
	seriesIters := map[string][]int64{}
	for _, e := range events {
		if !wanted(e) {
			continue
		}
		k := e.Metric + "\x00" + e.Variant
		if !slices.Contains(seriesIters[k], e.Iter) {
			seriesIters[k] = append(seriesIters[k], e.Iter)
		}
	}
	for k, its := range seriesIters {
		slices.Sort(its)
		seriesIters[k] = its[max(0, len(its)-iters):]
	}
	var picked []store.Event
	for _, e := range events {
		if wanted(e) && slices.Contains(seriesIters[e.Metric+"\x00"+e.Variant], e.Iter) {
			picked = append(picked, e)
		}
	}
	sort.SliceStable(picked, func(i, j int) bool {
		a, b := picked[i], picked[j]
		if a.Iter != b.Iter {
			return a.Iter > b.Iter
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Variant < b.Variant
	})
	total := len(picked)
	offset = min(offset, total)
	end := total
	if !req.NoScroll {
		end = min(offset+maxMediaEvents, total)
	} else {
		offset, end = 0, min(total, maxMediaEvents)
	}
	docs := eventDocs(picked[offset:end])
	return api.TaskPlotsResponse{Plots: docs, Returned: len(docs), Total: total, ScrollID: fmt.Sprintf("p%d", end)}, nil
}

// debugScroll is the cursor of events.debug_images: per task and metric,
// the last iteration returned.
type debugScroll map[string]int64

func decodeDebugScroll(id string) (debugScroll, error) {
	st := debugScroll{}
	if id == "" {
		return st, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || json.Unmarshal(raw, &st) != nil {
		return nil, api.ErrValidation.New("invalid scroll_id", "scroll_id", id)
	}
	return st, nil
}

func (st debugScroll) encode() string {
	b, _ := json.Marshal(st)
	return base64.RawURLEncoding.EncodeToString(b)
}

func eventsDebugImages(s *Server, c *call) (any, error) {
	var req api.DebugImagesRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if len(req.Metrics) == 0 {
		return nil, api.ErrMissingRequiredFields.New("", "field", "metrics")
	}
	iters := 1
	if req.Iters != nil {
		if *req.Iters < 1 {
			return nil, api.ErrValidation.New("iters must be at least 1")
		}
		iters = *req.Iters
	}
	earlier := req.NavigateEarlier == nil || *req.NavigateEarlier
	state, err := decodeDebugScroll(req.ScrollID)
	if err != nil {
		return nil, err
	}
	if req.Refresh {
		state = debugScroll{}
	}
	byTask := map[string][]store.Event{}
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		for _, m := range req.Metrics {
			if _, ok := byTask[m.Task]; ok {
				continue
			}
			if err := s.readableOwner(tx, c, m.Task, req.ModelEvents); err != nil {
				return err
			}
			events, err := tx.Events(store.EventQuery{TaskID: m.Task, Types: []string{"training_debug_image"}})
			if err != nil {
				return err
			}
			byTask[m.Task] = events
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp := api.DebugImagesResponse{Metrics: []api.MetricEvents{}}
	for _, m := range req.Metrics {
		// Group the selected events by metric, then by iteration.
		groups := map[string]map[int64][]store.Event{}
		for _, e := range byTask[m.Task] {
			if (m.Metric != nil && e.Metric != *m.Metric) || (len(m.Variants) > 0 && !slices.Contains(m.Variants, e.Variant)) {
				continue
			}
			if groups[e.Metric] == nil {
				groups[e.Metric] = map[int64][]store.Event{}
			}
			groups[e.Metric][e.Iter] = append(groups[e.Metric][e.Iter], e)
		}
		metrics := make([]string, 0, len(groups))
		for metric := range groups {
			metrics = append(metrics, metric)
		}
		if m.Metric != nil && len(metrics) == 0 {
			metrics = append(metrics, *m.Metric) // answer the request, with no iterations
		}
		sort.Strings(metrics)
		for _, metric := range metrics {
			key := m.Task + "\x00" + metric
			its := make([]int64, 0, len(groups[metric]))
			for it := range groups[metric] {
				cur, seen := state[key]
				if seen && ((earlier && it >= cur) || (!earlier && it <= cur)) {
					continue
				}
				its = append(its, it)
			}
			slices.Sort(its)
			if earlier {
				slices.Reverse(its)
			}
			its = its[:min(iters, len(its))]
			me := api.MetricEvents{Task: m.Task, Metric: metric, Iterations: []api.IterationEvents{}}
			for _, it := range its {
				events := groups[metric][it]
				sort.SliceStable(events, func(i, j int) bool { return events[i].Variant < events[j].Variant })
				me.Iterations = append(me.Iterations, api.IterationEvents{Iter: it, Events: eventDocs(events)})
				state[key] = it
			}
			resp.Metrics = append(resp.Metrics, me)
		}
	}
	resp.ScrollID = state.encode()
	return resp, nil
}
