package server

import (
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// The paged task listing. tasks.get_all filters, sorts and pages in Go over
// every task of the company, which takes seconds with 100,000 tasks. A
// request that uses only what the store's listing table can answer (the
// web UI's tasks page, the SDK's Task.get_tasks with common filters) is
// served by the database instead, one page at a time, with the same
// result: the same filter semantics, the same order (missing values first,
// ties by id), the same page. Anything else takes the generic path.

// fastListKeys are the request fields the fast path understands.
var fastListKeys = map[string]bool{
	"status": true, "project": true, "user": true, "type": true, "tags": true, "system_tags": true,
	"search_text": true, "search_hidden": true, "started": true,
	"order_by": true, "page": true, "page_size": true, "only_fields": true,
}

// maxFastTerms bounds the terms of a list filter on the fast path (a long
// tag list is an OR of substring tests there).
const maxFastTerms = 100

// fastTaskList answers tasks.get_all from the listing table; ok is false
// when the request needs the generic path.
func (s *Server) fastTaskList(c *call, req *api.GetAllRequest, body map[string]any) (resp any, ok bool, err error) {
	if s.noFastList {
		return nil, false, nil
	}
	q, ok := fastPageQuery(req, body)
	if !ok {
		return nil, false, nil
	}
	q.Company = c.ident.Company
	var tasks []*api.Task
	err = s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		tasks, err = tx.TaskPage(q)
		return err
	})
	if err != nil {
		return nil, true, err
	}
	out := make([]map[string]any, len(tasks))
	for i, t := range tasks {
		out[i] = projectDoc(taskView(c, t), req.OnlyFields)
	}
	return map[string]any{"tasks": out}, true, nil
}

// fastPageQuery translates a tasks.get_all request for the listing table;
// ok is false when it uses anything the table cannot answer exactly.
func fastPageQuery(req *api.GetAllRequest, body map[string]any) (q store.TaskPageQuery, ok bool) {
	for k := range body {
		if !fastListKeys[k] {
			return q, false
		}
	}
	q = store.TaskPageQuery{HideHidden: !req.SearchHidden,
		Search: strings.ToLower(req.SearchText)}
	for _, f := range []struct {
		key string
		dst *store.TermFilter
	}{{"status", &q.Status}, {"project", &q.Project}, {"user", &q.User}, {"type", &q.Type},
		{"tags", &q.Tags}, {"system_tags", &q.SystemTags}} {
		tf, ok := fastTerms(body[f.key])
		if !ok {
			return q, false
		}
		*f.dst = tf
	}
	if v, present := body["started"]; present && v != nil {
		bounds, ok := fastDateBounds(v)
		if !ok {
			return q, false
		}
		q.Started = bounds
	}
	order := []string(req.OrderBy)
	if len(order) == 0 {
		order = []string{"created"}
	}
	for _, o := range order {
		desc := strings.HasPrefix(o, "-")
		field := strings.TrimPrefix(o, "-")
		if !fastOrderFields[field] {
			return q, false
		}
		q.Order = append(q.Order, store.TaskOrder{Field: field, Desc: desc})
	}
	size := maxPageSize
	if req.PageSize != nil {
		if *req.PageSize < 1 {
			return q, false // the generic path reports it
		}
		size = min(*req.PageSize, maxPageSize)
	}
	if req.Page != nil {
		if *req.Page < 0 || *req.Page > 1<<30/maxPageSize {
			return q, false
		}
		q.Offset = *req.Page * size
	}
	q.Limit = size
	return q, true
}

var fastOrderFields = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range store.TaskOrderFields {
		m[f] = true
	}
	return m
}()

// fastTerms reads a list filter made of plain values and "-value"
// exclusions only (no operators, no null term).
func fastTerms(v any) (store.TermFilter, bool) {
	var tf store.TermFilter
	var items []any
	switch x := v.(type) {
	case nil:
		return tf, true
	case string:
		items = []any{x}
	case []any:
		items = x
	default:
		return tf, false
	}
	if len(items) > maxFastTerms {
		return tf, false
	}
	for _, it := range items {
		s, ok := it.(string)
		if !ok || strings.HasPrefix(s, "__$") {
			return tf, false
		}
		if rest, neg := strings.CutPrefix(s, "-"); neg {
			if rest == "" {
				return tf, false
			}
			tf.Exclude = append(tf.Exclude, rest)
		} else if s == "" {
			return tf, false
		} else {
			tf.Include = append(tf.Include, s)
		}
	}
	return tf, true
}

// fastDateBounds reads a date filter (">=2024-01-01T00:00:00", ...) whose
// bounds the store can compare exactly.
func fastDateBounds(v any) ([]store.TimeBound, bool) {
	var items []string
	switch x := v.(type) {
	case string:
		items = []string{x}
	case []any:
		for _, i := range x {
			s, ok := i.(string)
			if !ok {
				return nil, false
			}
			items = append(items, s)
		}
	default:
		return nil, false
	}
	lo, hi := time.Unix(0, 0).AddDate(-250, 0, 0), time.Unix(0, 0).AddDate(250, 0, 0) // UnixNano's range
	var out []store.TimeBound
	for _, s := range items {
		op := ">="
		for _, o := range []string{">=", "<=", ">", "<"} {
			if strings.HasPrefix(s, o) {
				op, s = o, s[len(o):]
				break
			}
		}
		t, err := api.ParseTime(strings.TrimSpace(s))
		if err != nil || t.Before(lo) || t.After(hi) {
			return nil, false
		}
		out = append(out, store.TimeBound{Op: op, T: t})
	}
	return out, true
}
