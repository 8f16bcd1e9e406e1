package hocon

import (
	"bytes"
	"strings"
)

// maxNesting bounds how deeply objects, arrays and key paths may nest.
const maxNesting = 512

// parseTop parses a whole file: an object with or without its braces.
func (p *parser) parseTop() ([]field, error) {
	if bytes.HasPrefix(p.src, bom) {
		p.off = len(bom)
	}
	p.skipBlank(true)
	switch p.peek(0) {
	case '[':
		return nil, p.errAt(p.off, "the root of a config file must be an object, not an array")
	case '{':
		open := p.off
		p.off++
		fields, err := p.parseFields(true, open)
		if err != nil {
			return nil, err
		}
		p.skipBlank(true)
		if !p.eof() {
			return nil, p.errAt(p.off, "unexpected %s after the closing '}' of the root object", p.describe())
		}
		return fields, nil
	}
	return p.parseFields(false, 0)
}

// describe names the text at p.off for error messages.
func (p *parser) describe() string {
	if p.eof() {
		return "end of file"
	}
	if c := p.src[p.off]; c == '\n' {
		return "end of line"
	} else if c < ' ' || c >= 0x7f {
		return "character"
	}
	return "'" + string(p.src[p.off]) + "'"
}

// parseFields parses the fields of an object body, up to the closing brace
// when braced (open is the offset of the opening brace) or to the end of
// the file otherwise.
func (p *parser) parseFields(braced bool, open int) ([]field, error) {
	var out []field
	for {
		p.skipBlank(true)
		if p.eof() {
			if braced {
				return nil, p.errAt(open, "unterminated object: missing '}'")
			}
			return out, nil
		}
		switch p.src[p.off] {
		case '}':
			if braced {
				p.off++
				return out, nil
			}
			return nil, p.errAt(p.off, "unexpected '}' (no object is open)")
		case ']':
			return nil, p.errAt(p.off, "unexpected ']' (no array is open)")
		}
		if p.atInclude() {
			fs, err := p.parseInclude()
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		} else {
			f, err := p.parseField()
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		if err := p.endField(); err != nil {
			return nil, err
		}
	}
}

// endField checks that a field is followed by a separator.
func (p *parser) endField() error {
	p.skipSpaces()
	if p.atComment() {
		p.skipComment()
	}
	if p.eof() {
		return nil
	}
	switch p.src[p.off] {
	case '\n', ',', '}':
		return nil
	}
	return p.errAt(p.off, "unexpected %s after value (fields are separated by newlines or commas)", p.describe())
}

func (p *parser) parseField() (field, error) {
	keyOff := p.off
	path, err := p.parseKey()
	if err != nil {
		return field{}, err
	}
	saved := p.prefix
	p.prefix = append(append([]string(nil), saved...), path...)
	defer func() { p.prefix = saved }()
	if len(p.prefix)+p.depth > maxNesting {
		return field{}, p.errAt(keyOff, "keys and objects nested more than %d deep", maxNesting)
	}
	afterKey := p.off
	p.skipBlank(false)
	f := field{path: path}
	switch {
	case p.peek(0) == '{':
		f.value, err = p.parseObject()
		return f, err
	case p.peek(0) == '+' && p.peek(1) == '=':
		f.appendOp = true
		p.off += 2
	case p.peek(0) == '=' || p.peek(0) == ':':
		p.off++
	default:
		if bytes.IndexByte(p.src[afterKey:p.off], '\n') >= 0 {
			return field{}, p.errAt(afterKey, "expected ':', '=' or '{' after the key, found end of line")
		}
		return field{}, p.errAt(p.off, "expected ':', '=' or '{' after the key, found %s", p.describe())
	}
	p.skipBlank(false)
	f.value, err = p.parseValue()
	return f, err
}

// keyStop reports whether c cannot be part of unquoted key text.
func (p *parser) keyStop(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\f', '\v', '.', '"', '=', ':', '{', '}', '[', ']', ',', '#', '$', '\\':
		return true
	case '+':
		return p.peek(1) == '='
	}
	return false
}

// parseKey reads a key path: unquoted and "quoted" pieces joined by dots.
// Whitespace between two pieces of unquoted key text is kept, as in
// `foo bar = 1`.
func (p *parser) parseKey() ([]string, error) {
	var segs []string
	var cur strings.Builder
	has := false
	for !p.eof() {
		c := p.src[p.off]
		switch {
		case c == '"':
			if bytes.HasPrefix(p.src[p.off:], []byte(`"""`)) {
				return nil, p.errAt(p.off, `a key cannot be a """triple quoted""" string`)
			}
			s, err := p.scanQuoted()
			if err != nil {
				return nil, err
			}
			cur.WriteString(s)
			has = true
			continue
		case c == '.':
			if !has {
				return nil, p.errAt(p.off, "empty key segment before '.'")
			}
			segs = append(segs, cur.String())
			cur.Reset()
			has = false
			p.off++
			if len(segs) > maxNesting {
				return nil, p.errAt(p.off, "key has more than %d segments", maxNesting)
			}
			continue
		case c == ' ' || c == '\t':
			save := p.off
			ws := p.skipSpaces()
			if has && !p.eof() && !p.keyStop(p.src[p.off]) && !p.atComment() {
				cur.WriteString(ws)
				continue
			}
			p.off = save
		case !p.keyStop(c) && !(c == '/' && p.peek(1) == '/'):
			start := p.off
			for !p.eof() && !p.keyStop(p.src[p.off]) && !(p.src[p.off] == '/' && p.peek(1) == '/') {
				p.off++
			}
			cur.Write(p.src[start:p.off])
			has = true
			continue
		}
		break
	}
	if !has {
		if len(segs) > 0 {
			return nil, p.errAt(p.off, "key ends with '.'")
		}
		return nil, p.errAt(p.off, "expected a key, found %s", p.describe())
	}
	return append(segs, cur.String()), nil
}

// parseValue reads a value up to the end of the line, a comma or a closing
// bracket. Several pieces on one line form a concatenation.
func (p *parser) parseValue() (*node, error) {
	var parts []*node
loop:
	for !p.eof() {
		c := p.src[p.off]
		var part *node
		var err error
		switch {
		case isSpace(c) || (c == 0xC2 && p.peek(1) == 0xA0):
			ws := p.skipSpaces()
			if len(parts) > 0 {
				parts[len(parts)-1].ws += ws
			}
			continue
		case c == '\n' || c == ',' || c == '}' || c == ']' || p.atComment():
			break loop
		case c == '\\' && (p.peek(1) == '\n' || (p.peek(1) == '\r' && p.peek(2) == '\n')):
			// line continuation: the value goes on on the next line
			p.off += 2
			if p.src[p.off-1] == '\r' {
				p.off++
			}
			p.skipSpaces()
			continue
		case c == '=':
			return nil, p.errAt(p.off, "unexpected '=' in value (quote strings that contain '=')")
		case c == '"' && bytes.HasPrefix(p.src[p.off:], []byte(`"""`)):
			part, err = p.stringNode(p.scanTriple)
		case c == '"':
			part, err = p.stringNode(p.scanQuoted)
		case c == '$' && p.peek(1) == '{':
			part, err = p.parseSubst()
		case c == '{':
			part, err = p.parseObject()
		case c == '[':
			part, err = p.parseArray()
		default:
			at, start := p.posAt(p.off), p.off
			s := p.scanUnquoted()
			if p.off == start {
				return nil, p.errAt(p.off, "unexpected %s in value", p.describe())
			}
			part = &node{kind: kScalar, pos: at, key: p.keyString(), val: typedUnquoted(s), raw: s}
		}
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
	}
	switch len(parts) {
	case 0:
		return nil, p.errAt(p.off, "missing value (found %s)", p.describe())
	case 1:
		parts[0].ws = ""
		return parts[0], nil
	}
	parts[len(parts)-1].ws = ""
	return &node{kind: kConcat, pos: parts[0].pos, key: p.keyString(), elems: parts}, nil
}

func (p *parser) stringNode(scan func() (string, error)) (*node, error) {
	at := p.posAt(p.off)
	s, err := scan()
	if err != nil {
		return nil, err
	}
	return &node{kind: kScalar, pos: at, key: p.keyString(), val: s, raw: s}, nil
}

// parseSubst reads ${path} or ${?path}.
func (p *parser) parseSubst() (*node, error) {
	start := p.off
	p.off += 2
	n := &node{kind: kSubst, pos: p.posAt(start), key: p.keyString()}
	if p.peek(0) == '?' {
		n.optional = true
		p.off++
	}
	end := bytes.IndexAny(p.src[p.off:], "}\n")
	if end < 0 || p.src[p.off+end] != '}' {
		return nil, p.errAt(start, "unterminated substitution (missing '}')")
	}
	text := strings.TrimSpace(string(p.src[p.off : p.off+end]))
	p.off += end + 1
	n.raw = string(p.src[start:p.off])
	path, ok := splitPath(text)
	if !ok {
		return nil, p.errAt(start, "invalid path in substitution %s", n.raw)
	}
	n.path = path
	return n, nil
}

func (p *parser) parseObject() (*node, error) {
	open := p.off
	if p.depth++; p.depth+len(p.prefix) > maxNesting {
		return nil, p.errAt(open, "objects and arrays nested more than %d deep", maxNesting)
	}
	defer func() { p.depth-- }()
	n := &node{kind: kObjLit, pos: p.posAt(open), key: p.keyString()}
	p.off++
	fields, err := p.parseFields(true, open)
	n.lit = fields
	return n, err
}

func (p *parser) parseArray() (*node, error) {
	open := p.off
	if p.depth++; p.depth+len(p.prefix) > maxNesting {
		return nil, p.errAt(open, "objects and arrays nested more than %d deep", maxNesting)
	}
	defer func() { p.depth-- }()
	n := &node{kind: kArray, pos: p.posAt(open), key: p.keyString()}
	p.off++
	for {
		p.skipBlank(true)
		if p.eof() {
			return nil, p.errAt(open, "unterminated array: missing ']'")
		}
		switch p.src[p.off] {
		case ']':
			p.off++
			return n, nil
		case '}':
			return nil, p.errAt(p.off, "unexpected '}' inside an array")
		}
		v, err := p.parseValue()
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, v)
	}
}
