package server

import (
	"encoding/base64"
	"encoding/json"
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
// ties by id in the direction of the last field), the same page. Anything
// else takes the generic path.

// fastListKeys are the request fields the fast path understands.
var fastListKeys = map[string]bool{
	"status": true, "project": true, "user": true, "type": true, "tags": true, "system_tags": true,
	"search_text": true, "search_hidden": true, "started": true,
	"order_by": true, "page": true, "page_size": true, "only_fields": true,
	"size": true, "scroll_id": true,
}

// A scroll on the fast path (size, scroll_id) is keyset paging: its
// scroll id carries the last task's place in the order ("k" and the
// base64 of its JSON), so a page starts right after it without counting
// the tasks before it, and any replica can continue it. Scroll ids of the
// generic path ("o" and an offset) stay there.
const keysetScrollPrefix = "k"

func encodeScroll(c store.TaskCursor) string {
	b, _ := json.Marshal([]any{c.Value, c.ID}) // a string, an int64 or nil, and a string
	return keysetScrollPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// decodeScroll reads a keyset scroll id for an order on field; nil with
// ok means the start.
func decodeScroll(id, field string) (c *store.TaskCursor, ok bool) {
	rest, ok := strings.CutPrefix(id, keysetScrollPrefix)
	if !ok {
		return nil, id == ""
	}
	if rest == "" {
		return nil, true
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, false
	}
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil || len(parts) != 2 {
		return nil, false
	}
	c = &store.TaskCursor{}
	if json.Unmarshal(parts[1], &c.ID) != nil || c.ID == "" {
		return nil, false
	}
	if string(parts[0]) == "null" {
		return c, true
	}
	if store.TimeOrderField(field) {
		var us int64
		if json.Unmarshal(parts[0], &us) != nil {
			return nil, false
		}
		c.Value = us
	} else {
		var v string
		if json.Unmarshal(parts[0], &v) != nil {
			return nil, false
		}
		c.Value = v
	}
	return c, true
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
	scroll := req.Size != nil || req.ScrollID != nil
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
	page := map[string]any{"tasks": out}
	if scroll {
		next := keysetScrollPrefix
		if req.ScrollID != nil && *req.ScrollID != "" {
			next = *req.ScrollID // past the end: stays there
		}
		if len(tasks) > 0 {
			next = encodeScroll(store.CursorOf(tasks[len(tasks)-1], q.Order[0].Field))
		}
		page["scroll_id"] = next
	}
	return page, true, nil
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
	if req.Size != nil || req.ScrollID != nil {
		// A scroll (which takes precedence over page and page_size, as on
		// the generic path): keyset paging needs an order of one field.
		if len(q.Order) != 1 {
			return q, false
		}
		size, ok := fastPageSize(req.Size)
		if !ok {
			return q, false
		}
		id := ""
		if req.ScrollID != nil {
			id = *req.ScrollID
		}
		if q.After, ok = decodeScroll(id, q.Order[0].Field); !ok {
			return q, false
		}
		q.Limit = size
		return q, true
	}
	size, ok := fastPageSize(req.PageSize)
	if !ok {
		return q, false
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

// fastPageSize is a page's size, at most maxPageSize; a size below 1 is
// left to the generic path, which reports it.
func fastPageSize(n *int) (int, bool) {
	if n == nil {
		return maxPageSize, true
	}
	return min(*n, maxPageSize), *n >= 1
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
