// Package hocon reads HOCON configuration files such as clearml.conf, the
// way the Python clearml-agent (through pyhocon) reads them.
//
// # Supported
//
//   - The root object with or without surrounding braces; nested objects
//     introduced by `key { ... }`, `key = { ... }` or `key : { ... }`.
//   - Keys that are bare (`git_user`), quoted (`"access_key"`, where a
//     quoted "a.b" is one key) or dotted paths (`a.b.c = 1` creates the
//     nested objects). Bare keys may contain spaces between words
//     (`foo bar = 1`), as in HOCON and pyhocon.
//   - `key = value`, `key: value`, `key += value` (append to an array).
//   - Fields and array elements separated by newlines or commas; trailing
//     commas and, like pyhocon, repeated commas are accepted.
//   - `#` and `//` comments.
//   - Values: unquoted strings, "double quoted" strings (escapes below),
//     """triple quoted""" multi-line strings, integers (int64) and floats
//     (float64), true/false and null (in any letter case, as pyhocon does),
//     arrays and objects at any depth.
//   - Concatenation of the pieces of a value on one line: `a = foo bar` is
//     "foo bar", `"a" "b"` is "a b", `x = ${HOME}/foo`; arrays concatenate
//     (`${a} [3]`) and objects merge (`${base} { x = 1 }`).
//   - Duplicate keys: when both values are objects they are merged (the
//     later one wins key by key); otherwise the later value replaces the
//     earlier one.
//   - Substitutions `${path}` and `${?path}`, resolved against the whole
//     config after parsing and then against environment variables. An
//     unresolved `${?path}` leaves the field unset, or keeps its earlier
//     value. A field may refer to its own earlier value, or to a key inside
//     it (`path = ${path}":/extra"`, `foo = ${foo.a}`). Cycles are reported
//     as errors.
//   - `include "file"`, `include file("file")` and `include required(...)`,
//     relative to the including file's directory, with `*`/`?` glob patterns
//     as in pyhocon. Missing optional includes are ignored.
//
// Every syntax error is a *ParseError naming the file, line and column and,
// when inside a field, the field's dotted key, for example
//
//	clearml.conf:12:5: key "agent.git_user": unterminated string (missing closing '"' on the same line)
//
// The typed getters (String, Int, Float, Bool, StringList) convert the way
// pyhocon's get_* methods do, and a value of the wrong type yields a
// *ParseError pointing at the file, line and column where it was defined.
//
// # Deliberate deviations from the HOCON specification
//
// They follow what pyhocon, and so the Python agent, accepts:
//
//   - In unquoted values `:` and `/` are ordinary text, so
//     `api_server: http://localhost:8008` is the string
//     "http://localhost:8008". `//` starts a comment only where a new piece
//     of a value (or a key) would start, i.e. at the start of the value or
//     after whitespace: `a = http://x // note` is "http://x". `#` always
//     starts a comment outside quotes (write `\#` in unquoted text).
//   - Other characters the spec forbids in unquoted text (`+ ? ! @ * & ^`
//     and backquote) are accepted; `=` is rejected, as in pyhocon, so that
//     `a = 1 b = 2` on one line is an error rather than a string.
//   - Backslash escapes, in quoted and unquoted strings alike, are pyhocon's
//     rather than JSON's: `\n \t \r \\ \" \= \# \!` are replaced and every
//     other sequence is kept verbatim, `\b`, `\f`, `\/` and `\uXXXX`
//     included. So a regular expression such as "\bfoo\d" or a Windows path
//     such as "C:\Users" reaches the agent exactly as the Python agent sees
//     it. A backslash at the end of a line continues an unquoted value on
//     the next line.
//   - yes/no/on/off stay strings; Bool converts them (and 1/0) on read.
//   - Newlines and comments are allowed between a key and its separator
//     and between the separator and the value, as in pyhocon.
//   - Duration and size units (`10 seconds`, `512M`) are plain strings.
//   - url(), classpath() and package() includes are not supported: they are
//     skipped when optional and an error when required.
//   - A substitution that refers to an object enclosing its own field
//     (`a { b = ${a} }`) is reported as a cycle instead of being resolved
//     against an earlier value of that object. Includes do not re-root the
//     substitutions of the included file.
//   - The root of a file must be an object (pyhocon also accepts an array).
//   - Hostile input is bounded: objects and arrays nest at most 512 deep,
//     includes 16 deep and 256 files per parse, and substitutions may not
//     expand the config beyond 262144 values or 16 MiB of concatenated text.
package hocon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Config is a parsed and fully resolved configuration tree. Objects are
// map[string]any, arrays []any, and leaves string, int64, float64, bool or
// nil. The zero Config is empty and ready to use. A Config is not safe for
// concurrent use when one goroutine calls Set or Merge.
type Config struct {
	root    map[string]any
	origins map[string]pos // where each value (by pathKey) was defined
}

// Parse parses a config held in memory. name is used in error messages and
// to resolve includes, relative to filepath.Dir(name). Substitutions not
// found in the config are looked up with os.LookupEnv.
func Parse(name string, data []byte) (*Config, error) {
	return ParseWithEnv(name, data, os.LookupEnv)
}

// ParseFile reads and parses the file at path.
func ParseFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hocon: %w", err)
	}
	return Parse(path, data)
}

// ParseWithEnv is Parse with the environment lookup replaced by lookupEnv
// (nil means an empty environment).
func ParseWithEnv(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return parse(name, data, lookupEnv, osFS{})
}

func parse(name string, data []byte, lookupEnv func(string) (string, bool), fsys fileSystem) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	st := &includeState{fs: fsys}
	if name != "" {
		if abs, err := filepath.Abs(name); err == nil {
			st.stack = []string{abs}
		}
	}
	p := newParser(name, filepath.Dir(name), data, st)
	fields, err := p.parseTop()
	if err != nil {
		return nil, err
	}
	root := newObject(pos{file: name, line: 1, col: 1})
	applyFields(root, fields, []string{}, true)
	r := &resolver{root: root, env: lookupEnv}
	v, err := r.resolve(root)
	if errors.Is(err, errCycle) {
		err = &ParseError{File: name, Msg: "substitution cycle"}
	}
	if err != nil {
		return nil, err
	}
	if expandedSize(v, map[*value]int{}, maxValues) > maxValues {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf("config expands to more than %d values (runaway substitutions?)", maxValues)}
	}
	c := &Config{origins: map[string]pos{}}
	c.root = c.fromValue(v, nil).(map[string]any)
	return c, nil
}

// fromValue converts a resolved value to plain Go values, recording the
// origin of every node. Shared sub-values are copied.
func (c *Config) fromValue(v *value, path []string) any {
	c.origins[pathKey(path)] = v.pos
	switch v.kind {
	case vObject:
		m := make(map[string]any, len(v.obj))
		for _, k := range v.keys {
			m[k] = c.fromValue(v.obj[k], append(path[:len(path):len(path)], k))
		}
		return m
	case vArray:
		a := make([]any, len(v.arr))
		for i, e := range v.arr {
			a[i] = c.fromValue(e, append(path[:len(path):len(path)], indexSeg(i)))
		}
		return a
	}
	return v.val
}

// lookup returns the stored value at path ("" is the root) and its
// segments, without copying.
func (c *Config) lookup(path string) (any, []string, bool) {
	if c == nil {
		return nil, nil, false
	}
	if path == "" {
		if c.root == nil {
			return map[string]any{}, nil, true
		}
		return c.root, nil, true
	}
	segs, _ := splitPath(path)
	var cur any = c.root
	for _, s := range segs {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, nil, false
		}
		if cur, ok = m[s]; !ok {
			return nil, nil, false
		}
	}
	return cur, segs, true
}

// Get returns a copy of the value at the dotted path ("" for the whole
// tree). Segments may be quoted: `sdk."a.b".c`.
func (c *Config) Get(path string) (any, bool) {
	v, _, ok := c.lookup(path)
	if !ok {
		return nil, false
	}
	return deepCopy(v), true
}

// Has reports whether path is set (possibly to null).
func (c *Config) Has(path string) bool {
	_, _, ok := c.lookup(path)
	return ok
}

// Object returns a copy of the object at path.
func (c *Config) Object(path string) (map[string]any, bool) {
	v, _, ok := c.lookup(path)
	m, isObj := v.(map[string]any)
	if !ok || !isObj {
		return nil, false
	}
	return deepCopy(m).(map[string]any), true
}

// Keys returns the sorted keys of the object at path ("" for the root), or
// nil when path is not an object.
func (c *Config) Keys(path string) []string {
	v, _, _ := c.lookup(path)
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Config) init() {
	if c.root == nil {
		c.root = map[string]any{}
	}
	if c.origins == nil {
		c.origins = map[string]pos{}
	}
}

// Set stores v at path, creating intermediate objects and replacing
// whatever was there (objects are replaced, not merged; use Merge for
// that). v is normalised: Go integers become int64, floats float64, slices
// []any and string-keyed maps map[string]any; other types are stored as
// their fmt.Sprint text. Set with path "" replaces the root when v is a map
// and is ignored otherwise.
func (c *Config) Set(path string, v any) {
	c.init()
	nv := normalize(v)
	if path == "" {
		if m, ok := nv.(map[string]any); ok {
			c.root = m
			c.origins = map[string]pos{}
		}
		return
	}
	segs, _ := splitPath(path)
	m := c.root
	for i, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
			c.forget(segs[:i+1])
		}
		m = next
	}
	m[segs[len(segs)-1]] = nv
	c.forget(segs)
}

// forget drops the recorded origins of path and everything below it.
func (c *Config) forget(segs []string) {
	k := pathKey(segs)
	delete(c.origins, k)
	prefix := k + "\x00"
	for o := range c.origins {
		if strings.HasPrefix(o, prefix) {
			delete(c.origins, o)
		}
	}
}

// Merge lays other over c: objects present in both are merged key by key,
// any other value in other replaces the one in c. other is not modified.
func (c *Config) Merge(other *Config) {
	if other == nil || other.root == nil {
		return
	}
	c.init()
	c.mergeInto(c.root, other.root, nil, other)
}

func (c *Config) mergeInto(dst, src map[string]any, path []string, other *Config) {
	for k, sv := range src {
		p := append(path[:len(path):len(path)], k)
		dm, dok := dst[k].(map[string]any)
		sm, sok := sv.(map[string]any)
		if dok && sok {
			c.mergeInto(dm, sm, p, other)
			continue
		}
		c.forget(p)
		dst[k] = deepCopy(sv)
		c.copyOrigins(sv, p, other)
	}
}

func (c *Config) copyOrigins(v any, path []string, other *Config) {
	if o, ok := other.origins[pathKey(path)]; ok {
		c.origins[pathKey(path)] = o
	}
	switch x := v.(type) {
	case map[string]any:
		for k, cv := range x {
			c.copyOrigins(cv, append(path[:len(path):len(path)], k), other)
		}
	case []any:
		for i, cv := range x {
			c.copyOrigins(cv, append(path[:len(path):len(path)], indexSeg(i)), other)
		}
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, cv := range x {
			m[k] = deepCopy(cv)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, cv := range x {
			a[i] = deepCopy(cv)
		}
		return a
	}
	return v
}
