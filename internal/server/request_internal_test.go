package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

func TestLongestArray(t *testing.T) {
	t.Parallel()
	tests := []struct {
		doc  string
		want int
	}{
		{`{}`, 0},
		{`{"a": []}`, 0},
		{`{"a": [ ]}`, 0},
		{`{"a": [1]}`, 1},
		{`{"a": [1, 2, 3], "b": [4]}`, 3},
		{`{"a": [{"x": 1, "y": 2}, {"z": [5, 6]}]}`, 2},
		{`{"a": [[], [], [], []]}`, 4},
		{`{"a": [[1, 2, 3, 4, 5]]}`, 5},
		{`{"a": ["x,y,z", "[", "]", "\"", "\\"]}`, 5},
		{`{"a,b,c": "[1,2,3]", "d": {"e": [null, true, false]}}`, 3},
		{"{\"a\":\n[\t1 ,\r\n2 ]}", 2},
	}
	for _, tt := range tests {
		if got := longestArray([]byte(tt.doc)); got != tt.want {
			t.Errorf("longestArray(%s) = %d, want %d", tt.doc, got, tt.want)
		}
	}
}

// referenceLongestArray decodes doc and measures its arrays.
func referenceLongestArray(v any) int {
	longest := 0
	switch x := v.(type) {
	case []any:
		longest = len(x)
		for _, it := range x {
			longest = max(longest, referenceLongestArray(it))
		}
	case map[string]any:
		for _, it := range x {
			longest = max(longest, referenceLongestArray(it))
		}
	}
	return longest
}

// FuzzLongestArray checks the scanner behind the request list limit
// against a full decode of any valid JSON document.
func FuzzLongestArray(f *testing.F) {
	for _, s := range []string{`{"a": [1, [2, 3, 4]]}`, `[]`, `[[[]]]`, `{"x": "[,,,]"}`, `["\\", ",", "\u002c"]`, `1`, `"s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var v any
		if json.Unmarshal(doc, &v) != nil {
			longestArray(doc) // must not panic on anything
			return
		}
		if got, want := longestArray(doc), referenceLongestArray(v); got != want {
			t.Fatalf("longestArray(%q) = %d, want %d", doc, got, want)
		}
	})
}

// FuzzEachLine checks the streaming line reader of events.add_batch
// against splitting the whole body: the same non-blank trimmed lines with
// the same numbers, and a 413 exactly when the body is over the limit.
func FuzzEachLine(f *testing.F) {
	for _, s := range []string{"a\nb\n", "\n\n x \r\n", "no newline", "", "\\u0000 \\\\u0000\n" + string(make([]byte, 70000)) + "\nz"} {
		f.Add([]byte(s), uint32(100))
	}
	f.Add([]byte("x\n"+string(bytes.Repeat([]byte("y"), 150000))+"\n \n"), uint32(200000)) // a line over the reader's buffer
	f.Fuzz(func(t *testing.T, body []byte, limit uint32) {
		type line struct {
			n    int
			text string
		}
		var got []line
		err := eachLine(bytes.NewReader(body), int64(limit), func(n int, l []byte) error {
			got = append(got, line{n, string(l)})
			return nil
		})
		if int64(len(body)) > int64(limit) {
			if !api.ErrTooLarge.Is(err) {
				t.Fatalf("body of %d bytes over a limit of %d: %v, want 413", len(body), limit, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("eachLine: %v", err)
		}
		var want []line
		for i, l := range bytes.Split(body, []byte("\n")) {
			if t := replaceNULEscapes(bytes.TrimSpace(l)); len(t) > 0 {
				want = append(want, line{i + 1, string(t)})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("lines %v, want %v", got, want)
		}
	})
}
