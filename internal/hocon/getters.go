package hocon

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// The typed getters return the default when the path is missing or null.
// When the value exists but cannot be converted they return the default
// together with a *ParseError that names the key and where the value was
// defined (file:line:col).

// String returns the value at path as a string. Numbers and booleans are
// formatted (floats as Python prints them, e.g. 2.0); a missing or null
// value, an object or an array gives def.
func (c *Config) String(path, def string) string {
	v, _, ok := c.lookup(path)
	if !ok {
		return def
	}
	if s, ok := scalarString(v); ok {
		return s
	}
	return def
}

// Int returns the value at path as an integer. Accepted: integers, floats
// with no fractional part, and strings holding a decimal integer.
func (c *Config) Int(path string, def int64) (int64, error) {
	v, segs, ok := c.lookup(path)
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return i, nil
		}
	}
	return def, c.typeError(segs, v, "an integer")
}

// Float returns the value at path as a float64. Accepted: numbers and
// strings holding a number.
func (c *Config) Float(path string, def float64) (float64, error) {
	v, segs, ok := c.lookup(path)
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return def, c.typeError(segs, v, "a number")
}

// Bool returns the value at path as a boolean. Besides true and false,
// the strings true/yes/on/1 and false/no/off/0 (any letter case) and the
// integers 1 and 0 are accepted, as pyhocon's get_bool does (plus 1/0).
func (c *Config) Bool(path string, def bool) (bool, error) {
	v, segs, ok := c.lookup(path)
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		if x == 0 || x == 1 {
			return x == 1, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "1":
			return true, nil
		case "false", "no", "off", "0":
			return false, nil
		}
	}
	return def, c.typeError(segs, v, "a boolean")
}

// StringList returns the value at path as a list of strings. An array of
// scalars is converted element by element; a single scalar becomes a
// one-element list. A missing or null value gives nil.
func (c *Config) StringList(path string) ([]string, error) {
	v, segs, ok := c.lookup(path)
	if !ok || v == nil {
		return nil, nil
	}
	if s, ok := scalarString(v); ok {
		return []string{s}, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, c.typeError(segs, v, "a list of strings")
	}
	out := make([]string, 0, len(a))
	for i, e := range a {
		s, ok := scalarString(e)
		if !ok {
			es := append(segs[:len(segs):len(segs)], indexSeg(i))
			err := c.typeError(es, e, "a string")
			err.Key = fmt.Sprintf("%s[%d]", displayPath(segs), i)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (c *Config) typeError(segs []string, v any, want string) *ParseError {
	o := c.origins[pathKey(segs)]
	return &ParseError{File: o.file, Line: o.line, Col: o.col, Key: displayPath(segs),
		Msg: fmt.Sprintf("cannot use %s as %s", describe(v), want)}
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(x)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	}
	s, _ := scalarString(v)
	return "number " + s
}

// scalarString formats a scalar leaf; ok is false for null, objects and
// arrays.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return FormatFloat(x), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// FormatFloat formats f the way Python's str(float) does, so that values
// read by the Python agent and by this package print alike (2.0, 0.5,
// 1e+20).
func FormatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if a := math.Abs(f); a != 0 && (a >= 1e16 || a < 1e-4) {
		// Go, like Python, writes at least two exponent digits: 1e+20.
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// normalize converts a Go value given to Set into the types Config holds.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, float64:
		return x
	case []byte:
		return string(x)
	case *Config:
		if x == nil {
			return nil
		}
		return deepCopy(x.root)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return int64(u)
		}
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				out[it.Key().String()] = normalize(it.Value().Interface())
			}
			return out
		}
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem().Interface())
	}
	return fmt.Sprint(v)
}
