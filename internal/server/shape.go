package server

import "fmt"

// The shape of a request body, and what decoding it costs.
//
// Decoding JSON into generic values (map[string]any, []any), which the
// free-form parts of tasks and models need, costs far more memory than
// the text for dense shapes: "{}," is 3 bytes of body and about 80 bytes
// of heap. Before anything is decoded, measureJSON walks the text once,
// without allocating, and estimates the heap its generic decoding takes;
// a body whose estimate exceeds densityFactor times its size (plus
// decodeSlack) is refused. So a request costs at most a small multiple of
// its size whatever its shape, and the body gate (bodies.go) reserves
// that multiple.
const (
	// densityFactor bounds the decoded form against the body: ordinary
	// bodies (strings, ids, numbers with a few digits, objects of a few
	// fields) take 1 to 8 times their size.
	densityFactor = 10
	// decodeSlack is what any body may take beyond that, so that a small
	// body of any shape is served.
	decodeSlack = 1 << 20
)

// Estimated heap bytes of generically decoded values (64-bit Go, swiss
// maps), measured against encoding/json with UseNumber and rounded up.
const (
	costSlot     = 16  // a value's place in its array or object
	costScalar   = 16  // a number's or string's header, plus its bytes
	costArray    = 24  // a slice header, plus costSlot per item for growth
	costObject   = 48  // a map header
	costGroup    = 264 // the first group of a non-empty map
	costEntryKey = 64  // a key's header and its share of the map's tables, plus its bytes
)

// jsonShape is what measureJSON finds.
type jsonShape struct {
	longest int   // items of the longest array
	cost    int64 // estimated heap bytes of a generic decoding
}

// tooDense returns the error for a body whose decoding would cost too
// much for its size, or nil.
func (sh jsonShape) tooDense(size int) error {
	if sh.cost <= densityFactor*int64(size)+decodeSlack {
		return nil
	}
	return fmt.Errorf("the request body is too dense: decoding its %d bytes would take about %d MiB, over %d times its size; "+
		"send fewer, larger values", size, sh.cost>>20, densityFactor)
}

// measureJSON returns the shape of a valid JSON document, without
// decoding it (on invalid JSON it returns what it saw).
func measureJSON(doc []byte) jsonShape {
	type frame struct {
		array   bool
		commas  int
		items   bool // at least one item or member
		wantKey bool // in an object, the next string is a key
	}
	var stack []frame
	var sh jsonShape
	value := func() { // a value starts here
		sh.cost += costSlot
		if n := len(stack); n > 0 && stack[n-1].array {
			sh.cost += costSlot // slice growth
		}
	}
	for i := 0; i < len(doc); i++ {
		b := doc[i]
		switch b {
		case ' ', '\t', '\n', '\r', ':':
			continue
		}
		top := len(stack) - 1
		if top >= 0 && b != ']' && b != '}' && b != ',' {
			stack[top].items = true
		}
		switch b {
		case '"':
			start := i
			for i++; i < len(doc) && doc[i] != '"'; i++ {
				if doc[i] == '\\' {
					i++
				}
			}
			n := int64(i - start - 1)
			if top >= 0 && !stack[top].array && stack[top].wantKey {
				stack[top].wantKey = false
				sh.cost += costEntryKey + n
				continue
			}
			value()
			sh.cost += costScalar + n
		case '{', '[':
			value()
			if b == '[' {
				sh.cost += costArray
			} else {
				sh.cost += costObject
			}
			stack = append(stack, frame{array: b == '[', wantKey: b == '{'})
		case ']', '}':
			if top < 0 {
				return sh
			}
			f := stack[top]
			stack = stack[:top]
			if f.array && f.items && f.commas+1 > sh.longest {
				sh.longest = f.commas + 1
			}
			if !f.array && f.items {
				sh.cost += costGroup
			}
		case ',':
			if top >= 0 {
				stack[top].commas++
				stack[top].wantKey = !stack[top].array
			}
		case 't', 'f', 'n': // true, false, null: no allocation
			value()
			for i+1 < len(doc) && doc[i+1] >= 'a' && doc[i+1] <= 'z' {
				i++
			}
		default: // a number
			value()
			start := i
			for i+1 < len(doc) && (doc[i+1] == '.' || doc[i+1] == '-' || doc[i+1] == '+' || doc[i+1] == 'e' ||
				doc[i+1] == 'E' || doc[i+1] >= '0' && doc[i+1] <= '9') {
				i++
			}
			sh.cost += costScalar + int64(i-start+1)
		}
	}
	return sh
}

// longestArray returns the item count of the longest array in a valid JSON
// document, without decoding it.
func longestArray(doc []byte) int { return measureJSON(doc).longest }
