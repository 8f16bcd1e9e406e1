package server

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
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

// pendingEvent is a validated event in its stored form. A batch holds
// only these (about the size of its body), never the decoded documents.
type pendingEvent struct {
	ev          store.Event // Doc encoded, without allow_locked
	modelEvent  bool        // a model's metric: ev.TaskID is the model id
	allowLocked bool
	value       *float64 // a scalar's value, for last_metrics
	xAxisLabel  *string
}

// eventBatch collects a request's events as they are decoded.
type eventBatch struct {
	events     []*pendingEvent
	errorsInfo map[string]int // invalid events by reason
	items      int            // events seen, valid or not
	// strs interns the strings events repeat (task ids, metrics), so that
	// a batch of 100,000 scalars holds each once.
	strs map[string]string
}

func newEventBatch() *eventBatch {
	return &eventBatch{errorsInfo: map[string]int{}, strs: map[string]string{}}
}

func (b *eventBatch) intern(v string) string {
	if s, ok := b.strs[v]; ok {
		return s
	}
	if len(b.strs) < 10000 {
		b.strs[v] = v
	}
	return v
}

// add validates and encodes one event (a JSON object).
func (b *eventBatch) add(s *Server, c *call, raw []byte) error {
	b.items++
	pe, reason := s.decodeEvent(c, raw)
	if reason != "" {
		b.errorsInfo[reason]++
		return nil
	}
	doc, err := json.Marshal(pe.doc)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	e := pe.ev
	e.TaskID, e.Type, e.Metric, e.Variant = b.intern(e.TaskID), b.intern(e.Type), b.intern(e.Metric), b.intern(e.Variant)
	e.Doc = doc
	p := &pendingEvent{ev: e, modelEvent: pe.modelEvent, allowLocked: pe.allowLocked}
	if v, ok := pe.doc["value"].(json.Number); ok {
		if f, err := v.Float64(); err == nil {
			p.value = &f
		}
	}
	if l, ok := pe.doc["x_axis_label"].(string); ok {
		p.xAxisLabel = &l
	}
	b.events = append(b.events, p)
	return nil
}

func eventsAddBatch(s *Server, c *call) (any, error) {
	b := newEventBatch()
	if err := s.readEventLines(c, b); err != nil {
		return nil, err
	}
	if b.items == 0 {
		return nil, api.ErrBatchNoItems.New("")
	}
	return s.addEvents(c, b)
}

func eventsAdd(s *Server, c *call) (any, error) {
	if len(c.body) == 0 {
		return nil, api.ErrBatchNoItems.New("")
	}
	b := newEventBatch()
	if err := b.add(s, c, c.body); err != nil {
		return nil, err
	}
	return s.addEvents(c, b)
}

// decodedEvent is an event decoded for validation.
type decodedEvent struct {
	ev          store.Event
	doc         map[string]any // the document to store, without allow_locked
	modelEvent  bool
	allowLocked bool
}

// decodeEvent validates one event; the error string is its errors_info reason.
func (s *Server) decodeEvent(c *call, line []byte) (*decodedEvent, string) {
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
	de := &decodedEvent{ev: e, doc: doc}
	de.modelEvent, _ = doc["model_event"].(bool)
	de.allowLocked, _ = doc["allow_locked"].(bool)
	delete(doc, "allow_locked")
	return de, ""
}

// addEvents stores a batch's valid events in one transaction.
func (s *Server) addEvents(c *call, b *eventBatch) (any, error) {
	events, errorsInfo := b.events, b.errorsInfo
	added := 0
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		added = 0
		info := map[string]int{}
		tasks := map[string]*api.Task{}
		models := map[string]*api.Model{}
		var order, modelOrder []string
		now := s.now()
		for _, pe := range events {
			if pe.modelEvent {
				// A model's own metrics (OutputModel.report_*): the event's
				// task field holds the model id.
				m, seen := models[pe.ev.TaskID]
				if !seen {
					var err error
					m, err = s.getModel(tx, c, pe.ev.TaskID)
					if err != nil && !api.ErrInvalidModelID.Is(err) {
						return err
					}
					models[pe.ev.TaskID] = m
					if m != nil {
						modelOrder = append(modelOrder, m.ID)
					}
				}
				if m == nil {
					info["Invalid model id "+pe.ev.TaskID]++
					continue
				}
				if err := tx.AddEvent(&pe.ev); err != nil {
					return err
				}
				added++
				if pe.ev.Type != "log" && (m.LastIter == nil || pe.ev.Iter > *m.LastIter) {
					it := pe.ev.Iter
					m.LastIter = &it
				}
				continue
			}
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
			if t == nil || (!pe.allowLocked && (t.Status == api.StatusPublished || t.Status == api.StatusPublishing)) {
				info["Invalid task id "+pe.ev.TaskID]++
				continue
			}
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
		for _, id := range modelOrder {
			m := models[id]
			m.LastUpdate = &now
			if err := tx.PutModel(m); err != nil {
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
	if pe.value == nil {
		return
	}
	value := *pe.value
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
	if pe.xAxisLabel != nil {
		m["x_axis_label"] = *pe.xAxisLabel
	}
}
