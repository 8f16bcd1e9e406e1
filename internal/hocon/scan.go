package hocon

import (
	"bytes"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// parser reads one file. Low-level scanning lives here; the grammar is in
// parser.go and include handling in include.go.
type parser struct {
	name   string
	dir    string
	src    []byte
	off    int
	lines  []int    // offsets at which lines start
	prefix []string // path of the field being parsed, for error messages
	depth  int      // nesting of objects and arrays
	st     *includeState
}

func newParser(name, dir string, src []byte, st *includeState) *parser {
	p := &parser{name: name, dir: dir, src: src, st: st, lines: []int{0}}
	for i, c := range src {
		if c == '\n' {
			p.lines = append(p.lines, i+1)
		}
	}
	return p
}

func (p *parser) posAt(off int) pos {
	ln := sort.Search(len(p.lines), func(i int) bool { return p.lines[i] > off }) - 1
	if off > len(p.src) {
		off = len(p.src)
	}
	return pos{file: p.name, line: ln + 1, col: utf8.RuneCount(p.src[p.lines[ln]:off]) + 1}
}

func (p *parser) keyString() string { return displayPath(p.prefix) }

func (p *parser) errAt(off int, format string, args ...any) *ParseError {
	return errAtPos(p.posAt(off), p.keyString(), format, args...)
}

func (p *parser) eof() bool { return p.off >= len(p.src) }

// peek returns the byte at off+i, or 0 past the end.
func (p *parser) peek(i int) byte {
	if p.off+i < len(p.src) {
		return p.src[p.off+i]
	}
	return 0
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

// skipSpaces skips blanks other than newlines and returns them.
func (p *parser) skipSpaces() string {
	start := p.off
	for !p.eof() {
		if isSpace(p.src[p.off]) {
			p.off++
		} else if bytes.HasPrefix(p.src[p.off:], bom) {
			p.off += len(bom)
		} else if bytes.HasPrefix(p.src[p.off:], nbsp) {
			p.off += len(nbsp)
		} else {
			break
		}
	}
	return string(p.src[start:p.off])
}

var (
	bom  = []byte("\uFEFF")
	nbsp = []byte("\u00A0")
)

func (p *parser) atComment() bool {
	c := p.peek(0)
	return c == '#' || (c == '/' && p.peek(1) == '/')
}

// skipComment skips a comment up to, not including, the newline.
func (p *parser) skipComment() {
	if i := bytes.IndexByte(p.src[p.off:], '\n'); i >= 0 {
		p.off += i
	} else {
		p.off = len(p.src)
	}
}

// skipBlank skips spaces, newlines, comments and, when commas is true,
// commas (several in a row are tolerated, as pyhocon does).
func (p *parser) skipBlank(commas bool) {
	for {
		p.skipSpaces()
		switch {
		case p.eof():
			return
		case p.src[p.off] == '\n', commas && p.src[p.off] == ',':
			p.off++
		case p.atComment():
			p.skipComment()
		default:
			return
		}
	}
}

// scanQuoted reads a "double quoted" string starting at p.off. Escapes are
// pyhocon's (see unescape), not JSON's: \b, \f, \/ and \uXXXX are kept
// verbatim, so regular expressions such as "\bfoo\b" reach the agent as
// the Python agent sees them.
func (p *parser) scanQuoted() (string, error) {
	start := p.off
	p.off++
	var b strings.Builder
	for {
		if p.eof() || p.src[p.off] == '\n' {
			return "", p.errAt(start, "unterminated string (missing closing '\"' on the same line)")
		}
		c := p.src[p.off]
		switch c {
		case '"':
			p.off++
			return b.String(), nil
		case '\\':
			if p.off+1 >= len(p.src) || p.src[p.off+1] == '\n' {
				return "", p.errAt(start, "unterminated string (missing closing '\"' on the same line)")
			}
			unescape(&b, p.src[p.off+1])
			p.off += 2
		default:
			b.WriteByte(c)
			p.off++
		}
	}
}

// unescape writes the meaning of the escape sequence backslash-e the way
// pyhocon does, in quoted and unquoted strings alike: \\ \" \n \r \t
// \= \# \! are replaced and any other sequence is kept as written (a
// Windows path such as C:\Users stays intact).
func unescape(b *strings.Builder, e byte) {
	switch e {
	case '\\', '"', '=', '#', '!':
		b.WriteByte(e)
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	default:
		b.WriteByte('\\')
		b.WriteByte(e)
	}
}

// scanTriple reads a """triple quoted""" string: no escapes, newlines kept,
// and extra quotes just before the closing """ belong to the string.
func (p *parser) scanTriple() (string, error) {
	start := p.off
	body := p.off + 3
	i := bytes.Index(p.src[body:], []byte(`"""`))
	if i < 0 {
		return "", p.errAt(start, `unterminated multi-line string (missing closing """)`)
	}
	end := body + i
	for end+3 < len(p.src) && p.src[end+3] == '"' {
		end++
	}
	p.off = end + 3
	return string(p.src[body:end]), nil
}

// unquotedStop reports whether c ends a piece of unquoted value text.
func unquotedStop(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\f', '\v', '"', '{', '}', '[', ']', ',', '#', '=':
		return true
	}
	return false
}

// scanUnquoted reads unquoted value text up to whitespace or a character
// with a meaning of its own. Colons and slashes are ordinary text here, so
// `http://host:8008/x` is one piece; `//` only starts a comment at the
// beginning of a piece, which the caller checks. Backslash escapes are
// those of unescape.
func (p *parser) scanUnquoted() string {
	var b strings.Builder
	for !p.eof() {
		c := p.src[p.off]
		if unquotedStop(c) || (c == '$' && p.peek(1) == '{') || (c == 0xC2 && p.peek(1) == 0xA0) {
			break
		}
		if c == '\\' && p.off+1 < len(p.src) {
			e := p.src[p.off+1]
			if e == '\n' || (e == '\r' && p.peek(2) == '\n') {
				break
			}
			p.off += 2
			unescape(&b, e)
			continue
		}
		b.WriteByte(c)
		p.off++
	}
	return b.String()
}

var numberRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[+-]?(\d*\.\d+|\d+(\.\d+)?)([eE][+-]?\d+)?$`) })

// typedUnquoted gives an unquoted token its type the way pyhocon does:
// true/false/null in any letter case, then numbers; anything else
// (including yes/no/on/off) stays a string.
func typedUnquoted(s string) any {
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if !numberRE().MatchString(s) {
		return s
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}
