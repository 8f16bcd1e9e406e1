package server_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/hocon"
)

// The reference server's schema (testdata/schema, see its NOTICE), read with
// our HOCON parser, which resolves the reference's own includes and
// ${endpoint."2.x"} version chains.

const schemaDir = "testdata/schema"

var (
	schemaOnce  sync.Once
	schemaFiles map[string]map[string]any // service -> parsed file
	schemaExtra map[string]map[string]any // "defaults", "exceptions"
	schemaErr   error
)

func loadSchema(t testing.TB) {
	t.Helper()
	schemaOnce.Do(func() {
		schemaFiles, schemaExtra = map[string]map[string]any{}, map[string]map[string]any{}
		for _, name := range []string{"tasks", "models", "projects", "queues", "workers", "events", "auth", "server", "defaults", "exceptions"} {
			c, err := hocon.ParseFile(filepath.Join(schemaDir, name+".conf"))
			if err != nil {
				schemaErr = fmt.Errorf("reading schema %s: %w", name, err)
				return
			}
			root, _ := c.Object("")
			if name == "defaults" || name == "exceptions" {
				schemaExtra[name] = root
			} else {
				schemaFiles[name] = root
			}
		}
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
}

// responseSchema is the reference's answer schema of endpoint at version
// (the newest version block not above it), with the definitions it refers
// to. ok is false when the schema does not declare the endpoint.
func responseSchema(t testing.TB, endpoint, version string) (resp, defs map[string]any, ok bool) {
	t.Helper()
	loadSchema(t)
	service, action, _ := strings.Cut(endpoint, ".")
	file := schemaFiles[service]
	if file == nil {
		return nil, nil, false
	}
	defs, _ = file["_definitions"].(map[string]any)
	if r, ok := mapAt(schemaExtra["exceptions"], "replace", endpoint); ok {
		resp, _ = r["response"].(map[string]any)
		return resp, defs, true
	}
	versions, _ := file[action].(map[string]any)
	best := ""
	for v := range versions {
		if _, _, ok := api.ParseVersion(v); ok && !versionAbove(v, version) && (best == "" || versionAbove(v, best)) {
			best = v
		}
	}
	if best == "" {
		return nil, nil, false
	}
	resp, ok = versions[best].(map[string]any)["response"].(map[string]any)
	return resp, defs, ok
}

func versionAbove(a, b string) bool {
	am, an, _ := api.ParseVersion(a)
	bm, bn, _ := api.ParseVersion(b)
	return am > bm || am == bm && an > bn
}

func mapAt(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// conformance checks one answer against a response schema.
type conformance struct {
	endpoint string // the endpoint's name, as the exceptions name it
	label    string // how failures name the call
	defs     map[string]any
	fresh    bool // the answer's documents were just created: check default values too
	errs     []string
}

func (c *conformance) fail(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("%s: %s: %s", c.label, path, fmt.Sprintf(format, args...)))
}

// optional reports whether the reference may leave a declared field out.
func (c *conformance) optional(path string) bool {
	o, _ := mapAt(schemaExtra["exceptions"], "optional", c.endpoint)
	_, ok := o[path]
	return ok
}

// checkAnswer checks data, the answer's data section, against resp.
func (c *conformance) checkAnswer(data []byte, resp map[string]any) {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		c.fail("data", "not JSON: %v", err)
		return
	}
	c.check("", v, resp, "", true)
}

// check checks v at path against schema s. def names the definition s came
// from ("" when inline). top marks the answer itself, whose declared fields
// are all required.
func (c *conformance) check(path string, v any, s map[string]any, def string, top bool) {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			break
		}
		def = strings.TrimPrefix(ref, "#/definitions/")
		next, ok := c.defs[def].(map[string]any)
		if !ok {
			c.fail(path, "schema refers to unknown definition %s", ref)
			return
		}
		merged := map[string]any{}
		for k, x := range next {
			merged[k] = x
		}
		for k, x := range s {
			if k != "$ref" {
				merged[k] = x
			}
		}
		s = merged
	}
	if v == nil {
		if !slices.Contains(schemaTypes(s), "null") {
			c.fail(path, "null where the reference sends %v", schemaTypes(s))
		}
		return
	}
	types := schemaTypes(s)
	if len(types) > 0 && !slices.ContainsFunc(types, func(t string) bool { return typeMatches(t, v) }) {
		c.fail(path, "%s where the reference sends %v", describeJSON(v), types)
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		c.fail(path, "%v is not one of %v", v, enum)
	}
	if f, _ := s["format"].(string); f == "date-time" {
		if str, _ := v.(string); str != "" {
			if _, err := api.ParseTime(str); err != nil {
				c.fail(path, "%q is not a date-time", str)
			}
		}
	}
	switch x := v.(type) {
	case map[string]any:
		c.checkObject(path, x, s, def, top)
	case []any:
		items, _ := s["items"].(map[string]any)
		for i, it := range x {
			if items != nil {
				c.check(fmt.Sprintf("%s[%d]", path, i), it, items, "", false)
			}
		}
	}
}

func (c *conformance) checkObject(path string, x map[string]any, s map[string]any, def string, top bool) {
	props, _ := s["properties"].(map[string]any)
	for _, k := range sortedKeys(props) {
		ps, _ := props[k].(map[string]any)
		fv, present := x[k]
		p := joinPath(path, k)
		if !present {
			if top && !c.optional(listPath(p)) {
				c.fail(p, "missing (the reference always sends it)")
			}
			continue
		}
		c.check(p, fv, ps, "", false)
	}
	switch ap := s["additionalProperties"].(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if _, declared := props[k]; !declared {
				c.check(joinPath(path, k), x[k], ap, "", false)
			}
		}
	case bool:
		if !ap && len(props) == 0 && len(x) > 0 {
			c.fail(path, "fields %v where the reference sends none", sortedKeys(x))
		}
	}
	if d, ok := mapAt(schemaExtra["defaults"], def); ok {
		c.checkDocument(path, x, d)
	}
}

// checkDocument checks that an object document carries what the reference
// stores for every object of its kind (defaults.conf).
func (c *conformance) checkDocument(path string, x map[string]any, d map[string]any) {
	set, _ := d["set"].([]any)
	for _, f := range set {
		if _, ok := x[f.(string)]; !ok {
			c.fail(joinPath(path, f.(string)), "missing (the reference sets it on every object)")
		}
	}
	defaults, _ := d["defaults"].(map[string]any)
	c.checkDefaults(path, x, defaults)
}

func (c *conformance) checkDefaults(path string, x map[string]any, defaults map[string]any) {
	for _, k := range sortedKeys(defaults) {
		p := joinPath(path, k)
		got, ok := x[k]
		if !ok {
			c.fail(p, "missing (the reference stores it on every object, default %s)", describeDefault(defaults[k]))
			continue
		}
		want := defaults[k]
		if sub, isMap := want.(map[string]any); isMap && len(sub) > 0 {
			gm, ok := got.(map[string]any)
			if !ok {
				c.fail(p, "%s where the reference stores an object", describeJSON(got))
				continue
			}
			c.checkDefaults(p, gm, sub)
			continue
		}
		if !sameKind(got, want) {
			c.fail(p, "%s where the reference stores %s", describeJSON(got), describeDefault(want))
		} else if c.fresh && !sameJSON(got, want) {
			c.fail(p, "fresh object has %v, the reference's default is %s", got, describeDefault(want))
		}
	}
}

func schemaTypes(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if x == nil {
				out = append(out, "null")
			} else {
				out = append(out, fmt.Sprint(x))
			}
		}
		return out
	}
	return nil
}

func typeMatches(t string, v any) bool {
	switch t {
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		_, err := strconv.ParseInt(string(n), 10, 64)
		return ok && err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

func describeDefault(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sameKind reports whether got has the JSON kind of want (a HOCON value).
func sameKind(got, want any) bool {
	switch want.(type) {
	case string:
		_, ok := got.(string)
		return ok
	case int64, float64:
		_, ok := got.(json.Number)
		return ok
	case bool:
		_, ok := got.(bool)
		return ok
	case map[string]any:
		_, ok := got.(map[string]any)
		return ok
	case []any:
		_, ok := got.([]any)
		return ok
	}
	return false
}

func sameJSON(got, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	return reflect.DeepEqual(x, y)
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// listPath writes list indexes as [] ("succeeded[0].x" is "succeeded[].x").
func listPath(p string) string {
	var b strings.Builder
	skip := false
	for _, r := range p {
		switch {
		case r == '[':
			b.WriteString("[]")
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
