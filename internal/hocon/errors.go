package hocon

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError describes a problem found while reading a config file or, for
// the typed getters, a value that cannot be converted to the requested type.
// File, Line and Col locate the offending text (Line and Col are 1-based,
// Col counts Unicode code points); Key is the dotted path of the field being
// read, or "" when the problem is not tied to a field.
type ParseError struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

// Error formats the error as "file:line:col: key "a.b": message", leaving
// out the parts that are unknown.
func (e *ParseError) Error() string {
	var b strings.Builder
	loc := e.File
	if e.Line > 0 {
		if loc == "" {
			loc = "<input>"
		}
		loc += ":" + strconv.Itoa(e.Line)
		if e.Col > 0 {
			loc += ":" + strconv.Itoa(e.Col)
		}
	}
	if loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pos is where a value or token starts.
type pos struct {
	file string
	line int
	col  int
}

// errAtPos builds a ParseError located at p.
func errAtPos(p pos, key, format string, args ...any) *ParseError {
	return &ParseError{File: p.file, Line: p.line, Col: p.col, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// splitPath parses a path expression such as `agent.package_manager.type`
// or `sdk."key.with.dots".x` into its segments. ok is false when the path
// is malformed (unterminated quote, empty segment); the segments returned
// are then a best effort.
func splitPath(s string) (segs []string, ok bool) {
	ok = true
	var cur strings.Builder
	has := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			has = true
			j := i + 1
			closed := false
			for ; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					cur.WriteByte(s[j])
					continue
				}
				if s[j] == '"' {
					closed = true
					break
				}
				cur.WriteByte(s[j])
			}
			if !closed {
				ok = false
			}
			i = j
		case '.':
			if !has {
				ok = false
			}
			segs = append(segs, cur.String())
			cur.Reset()
			has = false
		default:
			has = true
			cur.WriteByte(c)
		}
	}
	if !has {
		ok = false
	}
	segs = append(segs, cur.String())
	return segs, ok
}

// displayPath renders path segments as a dotted path, quoting segments that
// would otherwise be read back differently.
func displayPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte('.')
		}
		if needsQuote(s) {
			// Only " and \ are escaped, the way splitPath reads them back.
			b.WriteByte('"')
			for i := 0; i < len(s); i++ {
				if s[i] == '"' || s[i] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(s[i])
			}
			b.WriteByte('"')
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ', c == '.', c == '"', c == '\\', c == '$', c == '#',
			c == '{', c == '}', c == '[', c == ']', c == ',', c == ':', c == '=':
			return true
		}
	}
	return false
}

// pathKey turns segments into a map key for the origin table; a NUL byte
// cannot be confused with anything a key may contain in practice.
func pathKey(segs []string) string {
	return strings.Join(segs, "\x00")
}

// indexSeg is the origin-table segment used for array element i.
func indexSeg(i int) string {
	return "\x01" + strconv.Itoa(i)
}
