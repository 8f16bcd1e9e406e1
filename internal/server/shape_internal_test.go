package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// shapes are bodies of many shapes, dense and ordinary, built to about n
// bytes.
var shapes = []struct {
	name  string
	dense bool // more than densityFactor heap bytes per body byte
	item  string
}{
	{"empty objects", true, `{}`},
	{"empty arrays", true, `[]`},
	{"small numbers", true, `1`},
	{"empty strings", true, `""`},
	{"one-field objects", true, `{"a":1}`},
	{"nested", true, `[[[{"a":[]}]]]`},
	{"nulls", false, `null`},
	{"ids", false, `"0123456789abcdef0123456789abcdef"`},
	{"floats", false, `0.12345678901234`},
	{"log lines", false, `"` + strings.Repeat("some console output ", 10) + `"`},
	{"parameters", false, `{"section":"Args","name":"learning_rate","value":"0.001","type":"float","description":"the step size"}`},
}

func shapeBody(item string, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"x":[`)
	for i := 0; b.Len() < n; i++ {
		switch {
		case i > 0 && i%50_000 == 0: // lists stay under MaxListItems
			b.WriteString(`],"y` + fmt.Sprint(i) + `":[`)
		case i > 0:
			b.WriteString(",")
		}
		b.WriteString(item)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// liveHeap decodes doc as the server's generic paths do and returns the
// heap it keeps: the least of three decodings, since what other
// goroutines of the test binary allocate meanwhile only adds to it.
func liveHeap(t *testing.T, doc []byte) int64 {
	if raceEnabled {
		t.Skip("the race detector turns off the tiny allocator: small values take more heap than in the build the bounds are for")
	}
	least := liveHeapOnce(t, doc)
	for range 2 {
		least = min(least, liveHeapOnce(t, doc))
	}
	return least
}

func liveHeapOnce(t *testing.T, doc []byte) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding the test body: %v", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	runtime.KeepAlive(doc)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// The estimate bounds the heap a generic decoding keeps, for every shape
// and size; dense shapes are refused from a small size on, and ordinary
// ones are served at any size up to the body limit.
func TestDecodeCostBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 100 MiB of JSON")
	}
	for _, sh := range shapes {
		for _, size := range []int{4 << 10, 256 << 10, 4 << 20} {
			doc := shapeBody(sh.item, size)
			est := measureJSON(doc)
			live := liveHeap(t, doc)
			if live > est.cost {
				t.Errorf("%s, %d bytes: decoding keeps %d bytes, over the estimate %d", sh.name, len(doc), live, est.cost)
			}
			refused := est.tooDense(len(doc)) != nil
			switch {
			case !sh.dense && refused:
				t.Errorf("%s, %d bytes: an ordinary body refused (estimate %.1f x its size)", sh.name, len(doc), float64(est.cost)/float64(len(doc)))
			case sh.dense && !refused && est.cost > decodeSlack:
				t.Errorf("%s, %d bytes: a dense body served (estimate %.1f x)", sh.name, len(doc), float64(est.cost)/float64(len(doc)))
			}
		}
	}
}

// A large object (a model's labels, a task's parameters) is bounded too.
func TestDecodeCostBoundsLargeObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes large JSON objects")
	}
	for _, n := range []int{100, 10_000, 200_000} {
		var b bytes.Buffer
		b.WriteString(`{"labels":{`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"label%d":%d`, i, i)
		}
		b.WriteString(`}}`)
		doc := b.Bytes()
		est := measureJSON(doc)
		if live := liveHeap(t, doc); live > est.cost {
			t.Errorf("%d keys: decoding keeps %d bytes, over the estimate %d", n, live, est.cost)
		}
		if err := est.tooDense(len(doc)); err != nil {
			t.Errorf("%d keys: refused: %v", n, err)
		}
	}
}
