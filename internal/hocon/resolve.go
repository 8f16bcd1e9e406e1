package hocon

import (
	"errors"
	"fmt"
	"strings"
)

// value is a fully resolved config value with the position it came from.
type value struct {
	kind vkind
	obj  map[string]*value
	keys []string // obj keys in definition order
	arr  []*value
	val  any    // scalar: string, int64, float64, bool or nil
	raw  string // scalar text used in string concatenation
	pos  pos
}

type vkind uint8

const (
	vScalar vkind = iota
	vObject
	vArray
)

// Limits that keep hostile input (for instance substitutions that double a
// string or an array at every step) from exhausting memory.
const (
	maxValues      = 1 << 18
	maxStringBytes = 1 << 24
)

var errCycle = errors.New("substitution cycle")

type resolver struct {
	root   *node
	env    func(string) (string, bool)
	values int
	bytes  int
}

func (r *resolver) count(n int, at pos, key string) error {
	r.values += n
	if r.values > maxValues {
		return errAtPos(at, key, "config expands to more than %d values (runaway substitutions?)", maxValues)
	}
	return nil
}

// resolve returns n's value, or nil when n is an optional substitution (or
// a concatenation of them) that resolved to nothing.
func (r *resolver) resolve(n *node) (*value, error) {
	switch n.state {
	case 2:
		return n.res, nil
	case 1:
		return nil, errCycle
	}
	n.state = 1
	v, err := r.compute(n)
	if err != nil {
		return nil, err
	}
	if v == nil && n.fallback != nil {
		if v, err = r.resolve(n.fallback); err != nil {
			return nil, err
		}
	}
	n.state, n.res = 2, v
	return v, nil
}

func (r *resolver) compute(n *node) (*value, error) {
	switch n.kind {
	case kScalar:
		return &value{kind: vScalar, val: n.val, raw: n.raw, pos: n.pos}, r.count(1, n.pos, n.key)
	case kObject:
		out := &value{kind: vObject, obj: make(map[string]*value, len(n.order)), pos: n.pos}
		for _, k := range n.order {
			cv, err := r.resolve(n.fields[k])
			if err != nil {
				return nil, err
			}
			if cv != nil {
				out.obj[k] = cv
				out.keys = append(out.keys, k)
			}
		}
		return out, r.count(1, n.pos, n.key)
	case kObjLit:
		if n.built == nil {
			n.built = newObject(n.pos)
			applyFields(n.built, n.lit, nil, false)
		}
		return r.resolve(n.built)
	case kArray:
		out := &value{kind: vArray, pos: n.pos}
		for _, e := range n.elems {
			ev, err := r.resolve(e)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				out.arr = append(out.arr, ev)
			}
		}
		return out, r.count(1, n.pos, n.key)
	case kSubst:
		return r.substitute(n)
	case kConcat:
		return r.concat(n)
	case kMerge:
		b, err := r.resolve(n.base)
		if err != nil {
			return nil, err
		}
		o, err := r.resolve(n.overlay)
		if err != nil {
			return nil, err
		}
		if b != nil && b.kind == vObject {
			return r.merge(b, o)
		}
		return o, nil
	}
	return nil, fmt.Errorf("hocon: internal error: unknown node kind %d", n.kind)
}

func (r *resolver) substitute(n *node) (*value, error) {
	var v *value
	var err error
	if n.selfRef {
		if n.prev != nil {
			v, err = r.resolve(n.prev)
		}
		for _, s := range n.path[n.depthAt:] {
			if v == nil || v.kind != vObject {
				v = nil
				break
			}
			v = v.obj[s]
		}
	} else {
		v, err = r.lookup(n.path)
	}
	if errors.Is(err, errCycle) {
		return nil, errAtPos(n.pos, n.key, "substitution %s is part of a cycle", n.raw)
	}
	if err != nil || v != nil {
		return v, err
	}
	name := strings.Join(n.path, ".")
	if s, ok := r.env(name); ok {
		return &value{kind: vScalar, val: s, raw: s, pos: n.pos}, r.count(1, n.pos, n.key)
	}
	if n.optional {
		return nil, nil
	}
	return nil, errAtPos(n.pos, n.key, "cannot resolve substitution %s: no such key and no environment variable %s", n.raw, name)
}

// lookup finds path in the whole config. It walks merged objects without
// resolving them, so that a field may refer to a sibling; only values that
// are themselves unresolved are resolved on the way.
func (r *resolver) lookup(path []string) (*value, error) {
	cur := r.root
	for i, seg := range path {
		switch cur.kind {
		case kObject:
			child, ok := cur.fields[seg]
			if !ok {
				return nil, nil
			}
			cur = child
			continue
		case kMerge:
			if c, ok := cur.overlay.fields[seg]; ok && (c.kind == kScalar || c.kind == kArray) {
				cur = c
				continue
			}
		case kScalar, kArray:
			return nil, nil
		}
		v, err := r.resolve(cur)
		if err != nil || v == nil {
			return nil, err
		}
		for _, s := range path[i:] {
			if v.kind != vObject {
				return nil, nil
			}
			if v = v.obj[s]; v == nil {
				return nil, nil
			}
		}
		return v, nil
	}
	return r.resolve(cur)
}

// merge returns a new object with b's keys laid over a's; objects present
// on both sides are merged recursively.
func (r *resolver) merge(a, b *value) (*value, error) {
	out := &value{kind: vObject, obj: make(map[string]*value, len(a.obj)+len(b.obj)), pos: a.pos}
	out.keys = append(out.keys, a.keys...)
	for k, v := range a.obj {
		out.obj[k] = v
	}
	for _, k := range b.keys {
		bv := b.obj[k]
		av, ok := out.obj[k]
		switch {
		case !ok:
			out.keys = append(out.keys, k)
			out.obj[k] = bv
		case av.kind == vObject && bv.kind == vObject:
			m, err := r.merge(av, bv)
			if err != nil {
				return nil, err
			}
			out.obj[k] = m
		default:
			out.obj[k] = bv
		}
	}
	return out, r.count(len(out.keys)+1, a.pos, "")
}

func (r *resolver) concat(n *node) (*value, error) {
	var vals []*value
	var ws []string
	for _, p := range n.elems {
		v, err := r.resolve(p)
		if err != nil {
			return nil, err
		}
		if v != nil {
			vals = append(vals, v)
			ws = append(ws, p.ws)
		}
	}
	switch len(vals) {
	case 0:
		return nil, nil
	case 1:
		return vals[0], nil
	}
	first := vals[0].kind
	for _, v := range vals[1:] {
		if v.kind != first {
			return nil, errAtPos(n.pos, n.key, "cannot concatenate %s with %s", kindName(first), kindName(v.kind))
		}
	}
	switch first {
	case vObject:
		out := vals[0]
		for _, v := range vals[1:] {
			m, err := r.merge(out, v)
			if err != nil {
				return nil, err
			}
			out = m
		}
		return out, nil
	case vArray:
		out := &value{kind: vArray, pos: n.pos}
		for _, v := range vals {
			out.arr = append(out.arr, v.arr...)
		}
		return out, r.count(len(out.arr)+1, n.pos, n.key)
	}
	var b strings.Builder
	for i, v := range vals {
		b.WriteString(v.raw)
		if i < len(vals)-1 {
			b.WriteString(ws[i])
		}
	}
	r.bytes += b.Len()
	if r.bytes > maxStringBytes {
		return nil, errAtPos(n.pos, n.key, "string concatenations exceed %d bytes (runaway substitutions?)", maxStringBytes)
	}
	s := b.String()
	return &value{kind: vScalar, val: s, raw: s, pos: n.pos}, r.count(1, n.pos, n.key)
}

// expandedSize counts the values v becomes once shared sub-values are
// copied, stopping early past limit.
func expandedSize(v *value, memo map[*value]int, limit int) int {
	if n, ok := memo[v]; ok {
		return n
	}
	n := 1
	for _, c := range v.obj {
		if n += expandedSize(c, memo, limit); n > limit {
			break
		}
	}
	for _, c := range v.arr {
		if n > limit {
			break
		}
		n += expandedSize(c, memo, limit)
	}
	memo[v] = n
	return n
}

func kindName(k vkind) string {
	switch k {
	case vObject:
		return "an object"
	case vArray:
		return "an array"
	}
	return "a string"
}
