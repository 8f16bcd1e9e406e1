package server

import (
	"encoding/json"
	"testing"
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
