package hocon

// This file holds the unresolved syntax tree and the rules that fold the
// fields of a file, in order, into one root object: dotted keys, object
// merging, replacement, `+=` and the binding of self-referential
// substitutions to the value they replace.

type kind uint8

const (
	kObject kind = iota // fields already merged (the root and objects below it)
	kObjLit             // an object literal as written, fields not yet applied
	kArray
	kScalar
	kSubst
	kConcat
	kMerge // base (unresolved earlier value) with an object laid over it
)

// field is one `key = value` (or `key += value`, `key { ... }`) as parsed.
type field struct {
	path     []string
	appendOp bool
	value    *node
}

type node struct {
	kind kind
	pos  pos
	ws   string // whitespace that followed this part inside a concatenation
	key  string // display path of the enclosing field, for error messages

	fields map[string]*node // kObject
	order  []string         // kObject: first-definition order
	lit    []field          // kObjLit
	built  *node            // kObjLit: materialised object
	elems  []*node          // kArray elements, kConcat parts

	val any    // kScalar: string, int64, float64, bool or nil
	raw string // kScalar: text used when concatenated; kSubst: source text

	path     []string // kSubst
	optional bool     // kSubst: ${?path}
	selfRef  bool     // kSubst: refers to the value this field replaces
	prev     *node    // kSubst with selfRef: that value (nil when none)
	depthAt  int      // kSubst with selfRef: len of the field path; path[depthAt:] is looked up in prev

	base, overlay *node // kMerge
	fallback      *node // value kept when this one resolves to nothing

	state uint8 // resolution: 0 new, 1 in progress, 2 done
	res   *value
}

func newObject(p pos) *node {
	return &node{kind: kObject, pos: p, fields: map[string]*node{}}
}

func (n *node) set(key string, v *node) {
	if _, ok := n.fields[key]; !ok {
		n.order = append(n.order, key)
	}
	n.fields[key] = v
}

// isLazy reports whether n's final shape is only known after resolution.
func (n *node) isLazy() bool {
	return n.kind == kSubst || n.kind == kConcat || n.kind == kMerge
}

// applyFields folds fields into obj. prefix is obj's path from the root;
// rooted is false for object literals that live inside arrays or
// concatenations, whose place in the tree is unknown, in which case
// substitutions are never treated as self-references.
func applyFields(obj *node, fields []field, prefix []string, rooted bool) {
	for _, f := range fields {
		cur := obj
		for _, seg := range f.path[:len(f.path)-1] {
			cur = ensureObject(cur, seg, f.value.pos)
		}
		full := make([]string, 0, len(prefix)+len(f.path))
		full = append(append(full, prefix...), f.path...)
		assign(cur, f.path[len(f.path)-1], f.value, f.appendOp, full, rooted)
	}
}

// ensureObject returns the object stored under key, creating it (and
// replacing a non-object) as needed. When the existing value is not known
// until resolution, a merge node keeps it as the base of a fresh object.
func ensureObject(obj *node, key string, p pos) *node {
	ex := obj.fields[key]
	switch {
	case ex != nil && ex.kind == kObject:
		return ex
	case ex != nil && ex.kind == kMerge:
		return ex.overlay
	case ex != nil && ex.isLazy():
		fresh := newObject(p)
		obj.set(key, &node{kind: kMerge, pos: p, base: ex, overlay: fresh, key: ex.key})
		return fresh
	default:
		fresh := newObject(p)
		obj.set(key, fresh)
		return fresh
	}
}

func assign(obj *node, key string, v *node, appendOp bool, full []string, rooted bool) {
	existing := obj.fields[key]
	if appendOp {
		// `a += x` means `a = ${?a} [x]`, with ${?a} bound to the old value.
		prev := &node{kind: kSubst, pos: v.pos, key: v.key, path: full, raw: "${?" + displayPath(full) + "}",
			optional: true, selfRef: true, prev: existing, depthAt: len(full)}
		arr := &node{kind: kArray, pos: v.pos, key: v.key, elems: []*node{v}}
		v = &node{kind: kConcat, pos: v.pos, key: v.key, elems: []*node{prev, arr}}
	}
	if v.kind == kObjLit {
		child := ensureObject(obj, key, v.pos)
		applyFields(child, v.lit, full, rooted)
		return
	}
	if rooted {
		bindSelf(v, full, existing)
	}
	if existing != nil && v.isLazy() {
		v.fallback = existing
	}
	obj.set(key, v)
}

// bindSelf marks every substitution inside v whose path is full, or lies
// below full, as a self-reference to the value being replaced: HOCON's
// `path = ${path}:x` and `foo = ${foo.a}` look at the earlier value.
func bindSelf(v *node, full []string, existing *node) {
	switch v.kind {
	case kSubst:
		if !v.selfRef && hasPrefix(v.path, full) {
			v.selfRef = true
			v.prev = existing
			v.depthAt = len(full)
		}
	case kArray, kConcat:
		for _, e := range v.elems {
			bindSelf(e, full, existing)
		}
	case kObjLit:
		for _, f := range v.lit {
			bindSelf(f.value, full, existing)
		}
	}
}

// hasPrefix reports whether path starts with all of prefix.
func hasPrefix(path, prefix []string) bool {
	if len(path) < len(prefix) {
		return false
	}
	for i := range prefix {
		if path[i] != prefix[i] {
			return false
		}
	}
	return true
}
