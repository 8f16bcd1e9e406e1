package server

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

var eventTypes = []string{"log", "training_stats_scalar", "training_stats_vector", "training_debug_image", "plot"}

// singleValueIter marks single-value reports, which histograms leave out.
const singleValueIter = -(1 << 31)

type pendingEvent struct {
	ev  store.Event
	doc map[string]any
}

func eventsAddBatch(s *Server, c *call) (any, error) {
	if len(c.lines) == 0 {
		return nil, api.ErrBatchNoItems.New("")
	}
	return s.addEvents(c, c.lines)
}

func eventsAdd(s *Server, c *call) (any, error) {
	if len(c.body) == 0 {
		return nil, api.ErrBatchNoItems.New("")
	}
	return s.addEvents(c, [][]byte{c.body})
}

// decodeEvent validates one event; the error string is its errors_info reason.
func (s *Server) decodeEvent(c *call, line []byte) (*pendingEvent, string) {
	doc := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, "Invalid event: " + err.Error()
	}
	task, _ := doc["task"].(string)
	if task == "" {
		return nil, "Event has no task id"
	}
	etype, _ := doc["type"].(string)
	if etype == "" {
		return nil, "Event has no type"
	}
	if !slices.Contains(eventTypes, etype) {
		return nil, "Invalid event type " + etype
	}
	if me, _ := doc["model_event"].(bool); me {
		return nil, "Invalid model id " + task
	}
	e := store.Event{TaskID: task, Type: etype}
	switch ts := doc["timestamp"].(type) {
	case json.Number:
		f, err := ts.Float64()
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return nil, "Invalid timestamp"
		}
		e.Timestamp = int64(f)
	default:
		e.Timestamp = s.opts.Now().UnixMilli()
	}
	doc["timestamp"] = e.Timestamp
	if it, ok := doc["iter"]; ok && it != nil {
		n, isNum := it.(json.Number)
		v, err := n.Int64()
		if !isNum || err != nil {
			return nil, "Iteration must be an integer within int64"
		}
		e.Iter = v
	}
	e.Metric, _ = doc["metric"].(string)
	e.Variant, _ = doc["variant"].(string)
	doc["metric"], doc["variant"] = e.Metric, e.Variant
	if w, _ := doc["worker"].(string); w == "" {
		doc["worker"] = c.worker
	}
	if _, ok := doc["model_event"]; !ok {
		doc["model_event"] = false
	}
	doc["@timestamp"] = s.now()
	if etype != "log" {
		key, _ := doc["key"].(string)
		sum := sha1.Sum([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%s\x00%s\x00%s", task, etype, e.Iter, e.Metric, e.Variant, key)))
		e.Key = hex.EncodeToString(sum[:])
	}
	return &pendingEvent{ev: e, doc: doc}, ""
}

func (s *Server) addEvents(c *call, lines [][]byte) (any, error) {
	var events []*pendingEvent
	errorsInfo := map[string]int{}
	for _, line := range lines {
		pe, reason := s.decodeEvent(c, line)
		if reason != "" {
			errorsInfo[reason]++
			continue
		}
		events = append(events, pe)
	}
	added := 0
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		added = 0
		info := map[string]int{}
		tasks := map[string]*api.Task{}
		var order []string
		now := s.now()
		for _, pe := range events {
			t, seen := tasks[pe.ev.TaskID]
			if !seen {
				var err error
				t, err = s.getTask(tx, c, pe.ev.TaskID, api.ErrInvalidTaskID)
				if err != nil && !api.ErrInvalidTaskID.Is(err) {
					return err
				}
				tasks[pe.ev.TaskID] = t
				if t != nil {
					order = append(order, t.ID)
				}
			}
			allow, _ := pe.doc["allow_locked"].(bool)
			if t == nil || (!allow && (t.Status == api.StatusPublished || t.Status == api.StatusPublishing)) {
				info["Invalid task id "+pe.ev.TaskID]++
				continue
			}
			delete(pe.doc, "allow_locked")
			doc, err := json.Marshal(pe.doc)
			if err != nil {
				return err
			}
			pe.ev.Doc = doc
			if err := tx.AddEvent(&pe.ev); err != nil {
				return err
			}
			added++
			if pe.ev.Type != "log" && !strings.HasPrefix(pe.ev.Metric, ":monitor:") && pe.ev.Iter > t.LastIteration {
				t.LastIteration = pe.ev.Iter
			}
			if pe.ev.Type == "training_stats_scalar" {
				updateLastMetrics(t, pe)
			}
		}
		for _, id := range order {
			t := tasks[id]
			t.LastUpdate, t.LastChange = &now, &now
			if t.Status == api.StatusInProgress {
				s.refreshDuration(t, now)
			}
			if err := tx.PutTask(t); err != nil {
				return err
			}
		}
		for k, v := range info {
			errorsInfo[k] += v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	nerr := 0
	for _, v := range errorsInfo {
		nerr += v
	}
	if added == 0 {
		data := map[string]any{}
		for k, v := range errorsInfo {
			data[k] = v
		}
		return nil, &api.Error{Code: 400, Subcode: 131, Msg: "Events not added: " + summarize(errorsInfo), Data: data}
	}
	return api.AddBatchResponse{Added: added, Errors: nerr, ErrorsInfo: errorsInfo}, nil
}

func summarize(info map[string]int) string {
	keys := make([]string, 0, len(info))
	for k, v := range info {
		keys = append(keys, fmt.Sprintf("%s (%d)", k, v))
	}
	sort.Strings(keys)
	if len(keys) > 5 {
		keys = append(keys[:5], "...")
	}
	return strings.Join(keys, ", ")
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// updateLastMetrics keeps the per-series summary of spec 3.7.
func updateLastMetrics(t *api.Task, pe *pendingEvent) {
	v, ok := pe.doc["value"].(json.Number)
	if !ok {
		return
	}
	value, err := v.Float64()
	if err != nil {
		return
	}
	if t.LastMetrics == nil {
		t.LastMetrics = map[string]any{}
	}
	mk, vk := md5hex(pe.ev.Metric), md5hex(pe.ev.Variant)
	byVariant, _ := t.LastMetrics[mk].(map[string]any)
	if byVariant == nil {
		byVariant = map[string]any{}
		t.LastMetrics[mk] = byVariant
	}
	m, _ := byVariant[vk].(map[string]any)
	iter := pe.ev.Iter
	if m == nil {
		m = map[string]any{"metric": pe.ev.Metric, "variant": pe.ev.Variant, "first_value": value, "first_value_iteration": iter,
			"min_value": value, "min_value_iteration": iter, "max_value": value, "max_value_iteration": iter, "count": 0.0, "mean_value": 0.0}
		byVariant[vk] = m
	}
	num := func(k string) float64 {
		switch x := m[k].(type) {
		case float64:
			return x
		case json.Number:
			f, _ := x.Float64()
			return f
		}
		return 0
	}
	count := num("count")
	m["mean_value"] = addToMean(num("mean_value"), count, value)
	m["count"] = count + 1
	m["value"] = value
	if value < num("min_value") {
		m["min_value"], m["min_value_iteration"] = value, iter
	}
	if value > num("max_value") {
		m["max_value"], m["max_value_iteration"] = value, iter
	}
	if l, ok := pe.doc["x_axis_label"].(string); ok {
		m["x_axis_label"] = l
	}
}

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

func eventsGetTaskLog(s *Server, c *call) (any, error) {
	var req api.TaskLogRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	batch := 5000
	if req.BatchSize != nil {
		if *req.BatchSize < 1 {
			return nil, api.ErrValidation.New("batch_size must be at least 1")
		}
		batch = min(*req.BatchSize, 10000)
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
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		if err := s.readableTask(tx, c, req.Task); err != nil {
			return err
		}
		var err error
		if events, err = tx.Events(q); err != nil {
			return err
		}
		if len(events) == batch {
			// Events that share the last timestamp all go in this batch, so
			// that a client continuing from that timestamp misses none.
			last := events[len(events)-1]
			more, err := tx.Events(store.EventQuery{TaskID: req.Task, Types: q.Types, Desc: earlier,
				After: &store.EventCursor{Timestamp: last.Timestamp, Seq: last.Seq}, Limit: 10000})
			if err != nil {
				return err
			}
			for _, e := range more {
				if e.Timestamp != last.Timestamp {
					break
				}
				events = append(events, e)
			}
		}
		total, err = tx.CountEvents(req.Task, q.Types)
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
	batch := 500
	if req.BatchSize != nil {
		if *req.BatchSize < 1 {
			return nil, api.ErrValidation.New("batch_size must be at least 1")
		}
		batch = min(*req.BatchSize, 10000)
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
	err := s.store.View(c.ctx, func(tx store.Tx) error {
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
	return map[string]any{"deleted": deleted}, nil
}
