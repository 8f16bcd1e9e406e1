package shellwords

import (
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/goclearml/agent/internal/pyoracle"
)

// shlexOracle splits with Python's shlex.split (POSIX mode) in a python3
// process: the words, or the ValueError's message.
type shlexOracle struct{ *pyoracle.Oracle }

const shlexScript = `import json, shlex, sys
print("ready", flush=True)
for req in sys.stdin:
    r = json.loads(req)
    try:
        print(json.dumps({"words": shlex.split(r["s"], comments=r["comments"])}), flush=True)
    except ValueError as e:
        print(json.dumps({"error": str(e)}), flush=True)
`

// startShlex returns nil where python3 is not installed; the process
// ends with the test.
func startShlex(tb testing.TB) *shlexOracle {
	tb.Helper()
	o := pyoracle.Start(tb, shlexScript)
	if o == nil {
		return nil
	}
	return &shlexOracle{o}
}

// split returns shlex.split(s, comments=comments) and whether it failed.
func (o *shlexOracle) split(tb testing.TB, s string, comments bool) ([]string, bool) {
	tb.Helper()
	var resp struct {
		Words []string `json:"words"`
		Error *string  `json:"error"`
	}
	o.Ask(tb, map[string]any{"s": s, "comments": comments}, &resp)
	return resp.Words, resp.Error != nil
}

var splitSeeds = []string{
	`--ipc=host -e "A=b c" -v '/x y:/z'`,
	`a\ b "c\"d" 'e\f' "g\\h" "i\j"`,
	`'' "" a''b`,
	"a\\\nb\tc\rd",
	"x # comment\ny",
	`unterminated "quote`,
	`trailing\`,
	`"\`,
	"é 'ü' \"ß\"",
	"a\x00b \x0bc\x0cd",
}

// FuzzSplit: Split agrees with shlex.split(s), words and failures alike
// (where python3 is installed), and Join's output splits back into the
// same words.
func FuzzSplit(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	oracle := startShlex(f)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := Split(s)
		if err == nil {
			again, err := Split(Join(words))
			if err != nil || !sameWords(again, words) {
				t.Fatalf("Split(Join(%q)) = %q, %v", words, again, err)
			}
		}
		if oracle != nil && utf8.ValidString(s) {
			compare(t, oracle, s, false, words, err)
		}
	})
}

// FuzzSplitComments: SplitComments agrees with shlex.split(s,
// comments=True).
func FuzzSplitComments(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	oracle := startShlex(f)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitComments(s)
		if oracle != nil && utf8.ValidString(s) {
			compare(t, oracle, s, true, words, err)
		}
	})
}

func compare(t *testing.T, o *shlexOracle, s string, comments bool, words []string, err error) {
	t.Helper()
	want, failed := o.split(t, s, comments)
	if failed != (err != nil) || (!failed && !sameWords(words, want)) {
		t.Fatalf("split(%q, comments=%v) = %q, %v; shlex.split gives %q (failed: %v)", s, comments, words, err, want, failed)
	}
}

func sameWords(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}
