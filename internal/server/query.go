package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// filterSpec says how an entity's get_all filters apply (spec 1.9).
type filterSpec struct {
	lists  []string // list filters: OR of values, "-" excludes, null = empty
	regexs []string // regular-expression searches
	dates  []string // date ranges: ">2020-01-01", "<=..."
	// prefixes are dotted paths compared for equality (runtime.*).
	prefixes []string
	// equals are fields compared for equality with a scalar (models' ready).
	equals []string
}

var (
	taskFilters = filterSpec{
		lists:    []string{"user", "project", "parent", "type", "status", "tags", "system_tags", "execution.queue", "models.input.model"},
		regexs:   []string{"name", "comment"},
		dates:    []string{"status_changed", "last_update", "last_change", "created", "started", "completed"},
		prefixes: []string{"runtime.", "hyperparams.", "script."},
	}
	queueFilters   = filterSpec{lists: []string{"tags", "system_tags"}, regexs: []string{"name"}}
	projectFilters = filterSpec{lists: []string{"tags", "system_tags", "parent", "user"}, regexs: []string{"name", "basename", "description"}}
)

// docFilter is a compiled set of filters.
type docFilter struct {
	checks []func(map[string]any) bool
}

func (f *docFilter) match(doc map[string]any) bool {
	for _, c := range f.checks {
		if !c(doc) {
			return false
		}
	}
	return true
}

// compileFilter builds the filters the request body asks for.
func compileFilter(body map[string]any, spec filterSpec) (*docFilter, error) {
	f := &docFilter{}
	for _, field := range spec.lists {
		v, ok := body[field]
		if !ok || v == nil {
			continue
		}
		terms, err := filterTerms(field, v)
		if err != nil {
			return nil, err
		}
		if len(terms) == 0 {
			continue
		}
		field, ts := field, compileTerms(terms)
		f.checks = append(f.checks, func(doc map[string]any) bool { return ts.match(stringsAt(doc, field)) })
	}
	for _, field := range spec.regexs {
		v, ok := body[field]
		if !ok || v == nil {
			continue
		}
		pattern, ok := v.(string)
		if !ok {
			return nil, api.ErrValidation.New(fmt.Sprintf("field %s must be a string", field))
		}
		if pattern == "" {
			continue
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, api.ErrInvalidRegex.New("", "pattern", pattern)
		}
		field := field
		f.checks = append(f.checks, func(doc map[string]any) bool {
			s, _ := lookup(doc, field).(string)
			return re.MatchString(s)
		})
	}
	for _, field := range spec.dates {
		v, ok := body[field]
		if !ok || v == nil {
			continue
		}
		check, err := dateRange(field, v)
		if err != nil {
			return nil, err
		}
		f.checks = append(f.checks, check)
	}
	for key, v := range body {
		for _, p := range spec.prefixes {
			if strings.HasPrefix(key, p) && v != nil {
				want := fmt.Sprint(v)
				wants := []string{want}
				if list, ok := v.([]any); ok {
					wants = wants[:0]
					for _, x := range list {
						wants = append(wants, fmt.Sprint(x))
					}
				}
				key := key
				f.checks = append(f.checks, func(doc map[string]any) bool {
					got := lookup(doc, key)
					return got != nil && slices.Contains(wants, fmt.Sprint(got))
				})
			}
		}
	}
	for _, field := range spec.equals {
		v, ok := body[field]
		if !ok || v == nil {
			continue
		}
		want := fmt.Sprint(v)
		field := field
		f.checks = append(f.checks, func(doc map[string]any) bool {
			got := lookup(doc, field)
			return got != nil && fmt.Sprint(got) == want
		})
	}
	for _, key := range []string{"_all_", "_any_"} {
		v, ok := body[key].(map[string]any)
		if !ok {
			continue
		}
		pattern, _ := v["pattern"].(string)
		fields, _ := v["fields"].([]any)
		if pattern == "" || len(fields) == 0 {
			continue
		}
		re, err := regexp.Compile("(?i)" + pattern)
		if err != nil {
			return nil, api.ErrInvalidRegex.New("", "pattern", pattern)
		}
		all := key == "_all_"
		f.checks = append(f.checks, func(doc map[string]any) bool {
			for _, fl := range fields {
				name, _ := fl.(string)
				hit := false
				for _, s := range stringsAt(doc, name) {
					if re.MatchString(s) {
						hit = true
						break
					}
				}
				if hit && !all {
					return true
				}
				if !hit && all {
					return false
				}
			}
			return all
		})
	}
	return f, nil
}

// filterTerms validates a list filter's value.
func filterTerms(field string, v any) ([]any, error) {
	switch x := v.(type) {
	case string:
		return []any{x}, nil
	case []any:
		for _, t := range x {
			s, ok := t.(string)
			if t != nil && !ok {
				return nil, api.ErrValidation.New(fmt.Sprintf("field %s: list items must be strings", field))
			}
			if strings.HasPrefix(s, "__$") && !slices.Contains([]string{"__$all", "__$and", "__$any", "__$or", "__$not", "__$nop"}, s) {
				return nil, api.ErrFieldsValue.New("unsupported operator", "field", field, "value", s)
			}
		}
		return x, nil
	default:
		return nil, api.ErrValidation.New(fmt.Sprintf("field %s must be a list of strings", field))
	}
}

func dateRange(field string, v any) (func(map[string]any) bool, error) {
	var items []string
	switch x := v.(type) {
	case string:
		items = []string{x}
	case []any:
		for _, i := range x {
			if s, ok := i.(string); ok {
				items = append(items, s)
			} else if i != nil {
				return nil, api.ErrValidation.New(fmt.Sprintf("field %s: expected date strings", field))
			}
		}
	default:
		return nil, api.ErrValidation.New(fmt.Sprintf("field %s: expected date strings", field))
	}
	type bound struct {
		op string
		t  time.Time
	}
	var bounds []bound
	for _, s := range items {
		op := ">="
		for _, o := range []string{">=", "<=", ">", "<"} {
			if strings.HasPrefix(s, o) {
				op, s = o, s[len(o):]
				break
			}
		}
		t, err := api.ParseTime(strings.TrimSpace(s))
		if err != nil {
			return nil, api.ErrValidation.New(fmt.Sprintf("field %s: %v", field, err))
		}
		bounds = append(bounds, bound{op, t})
	}
	return func(doc map[string]any) bool {
		s, _ := lookup(doc, field).(string)
		t, err := api.ParseTime(s)
		if err != nil {
			return false
		}
		for _, b := range bounds {
			ok := map[string]bool{">": t.After(b.t), ">=": !t.Before(b.t), "<": t.Before(b.t), "<=": !t.After(b.t)}[b.op]
			if !ok {
				return false
			}
		}
		return true
	}, nil
}

// lookup reads a dotted path from a document.
func lookup(doc map[string]any, path string) any {
	var cur any = doc
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// lookupAll reads a dotted path that may cross lists of objects
// ("models.input.model" collects the model of every input entry).
func lookupAll(cur any, parts []string) any {
	if len(parts) == 0 {
		return cur
	}
	switch v := cur.(type) {
	case map[string]any:
		return lookupAll(v[parts[0]], parts[1:])
	case []any:
		var out []any
		for _, item := range v {
			switch x := lookupAll(item, parts).(type) {
			case nil:
			case []any:
				out = append(out, x...)
			default:
				out = append(out, x)
			}
		}
		return out
	}
	return nil
}

// stringsAt reads a field as a list of strings (a string is a list of one;
// an empty string is no value).
func stringsAt(doc map[string]any, path string) []string {
	switch v := lookupAll(doc, strings.Split(path, ".")).(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case nil:
		return nil
	default:
		return []string{fmt.Sprint(v)}
	}
}

// toDoc turns a typed document into a generic map.
func toDoc(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding document: %v", err))
	}
	m := map[string]any{}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		panic(fmt.Sprintf("decoding document: %v", err))
	}
	return m
}

// projectDoc keeps the requested dotted paths ("-path" removes one). The id
// is always kept.
func projectDoc(doc map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return doc
	}
	var include, exclude []string
	for _, f := range fields {
		if strings.HasPrefix(f, "-") {
			exclude = append(exclude, f[1:])
		} else if f != "" {
			include = append(include, f)
		}
	}
	out := doc
	if len(include) > 0 {
		out = map[string]any{}
		if id, ok := doc["id"]; ok {
			out["id"] = id
		}
		for _, path := range include {
			copyPath(doc, out, strings.Split(path, "."))
		}
	}
	for _, path := range exclude {
		deletePath(out, strings.Split(path, "."))
	}
	return out
}

func copyPath(src, dst map[string]any, parts []string) {
	v, ok := src[parts[0]]
	if !ok {
		return
	}
	if len(parts) == 1 {
		dst[parts[0]] = v
		return
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return
	}
	next, ok := dst[parts[0]].(map[string]any)
	if !ok {
		next = map[string]any{}
		dst[parts[0]] = next
	}
	copyPath(sub, next, parts[1:])
}

func deletePath(m map[string]any, parts []string) {
	if len(parts) == 1 {
		delete(m, parts[0])
		return
	}
	if sub, ok := m[parts[0]].(map[string]any); ok {
		deletePath(sub, parts[1:])
	}
}

// sortDocs orders documents by the order_by fields ("-" descending), with
// the id as the tie-breaker, in the direction of the last field (as the
// store's paged listing, which reads an index of a field and the id
// backwards for a descending order).
func sortDocs(docs []map[string]any, orderBy []string) {
	if len(orderBy) == 0 {
		return
	}
	tieDesc := strings.HasPrefix(orderBy[len(orderBy)-1], "-")
	sort.SliceStable(docs, func(i, j int) bool {
		for _, f := range orderBy {
			desc := strings.HasPrefix(f, "-")
			f = strings.TrimPrefix(f, "-")
			c := compareValues(lookup(docs[i], f), lookup(docs[j], f))
			if c != 0 {
				return (c < 0) != desc
			}
		}
		a, _ := docs[i]["id"].(string)
		b, _ := docs[j]["id"].(string)
		if tieDesc {
			return a > b
		}
		return a < b
	})
}

func compareValues(a, b any) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		default:
			return 1
		}
	}
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		af, _ := an.Float64()
		bf, _ := bn.Float64()
		switch {
		case af < bf:
			return -1
		case af > bf:
			return 1
		}
		return 0
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// maxPageSize caps every listing, as the reference does.
const maxPageSize = 500

// pageDocs applies page and page_size.
func pageDocs[T any](docs []T, page, pageSize *int) ([]T, error) {
	size := maxPageSize
	if pageSize != nil {
		if *pageSize < 1 {
			return nil, api.ErrValidation.New("page_size must be at least 1")
		}
		size = min(*pageSize, maxPageSize)
	}
	start := 0
	if page != nil {
		if *page < 0 {
			return nil, api.ErrValidation.New("page must be at least 0")
		}
		if *page > len(docs) { // past the end; *page * size could overflow
			return docs[:0], nil
		}
		start = *page * size
	}
	if start >= len(docs) {
		return docs[:0], nil
	}
	return docs[start:min(start+size, len(docs))], nil
}
