package pyenv

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goclearml/agent/internal/pyoracle"
)

// pipOracle reads requirement text with pip's own reader (join_lines and
// ignore_comments of pip._internal.req.req_file, without the ${VAR}
// expansion) in a python3 process that answers one JSON line per request.
type pipOracle struct{ *pyoracle.Oracle }

const pipOracleScript = `import json, sys
from pip._internal.req.req_file import join_lines, ignore_comments
print("ready", flush=True)
for req in sys.stdin:
    text = json.loads(req)
    lines = [" ".join(l.split()) for _, l in ignore_comments(join_lines(enumerate(text.splitlines(), start=1)))]
    print(json.dumps(lines), flush=True)
`

// startPipOracle returns nil when python3 or its pip is not there; the
// process ends when the test does.
func startPipOracle(tb testing.TB) *pipOracle {
	tb.Helper()
	o := pyoracle.Start(tb, pipOracleScript)
	if o == nil {
		return nil // no python3, or no pip for it
	}
	return &pipOracle{o}
}

func (o *pipOracle) lines(tb testing.TB, text string) []string {
	tb.Helper()
	var lines []string
	o.Ask(tb, text, &lines)
	return lines
}

var requirementSeeds = []string{
	"numpy==1.26  # pinned\n\n  torch   >= 2.0 ; python_version >= '3.9'\n",
	"# header\r\nalpha==1.0\r\n",
	"a \\\n  b\n",
	"# pinned for CUDA \\\ntorch==2.0\n",
	"foo \\ # comment\nbar\n",
	"a\rb\x0cc\u2028d\n",
	"x\u00a0#c\n",
	"\\\\lead\\\\ \\\ntrail\n",
	"-r other.txt\n-e ./pkg\n--index-url=https://u:p@host/simple\n-ihttps://x\n",
	"git+https://github.com/o/r@0123456789abcdef0123456789abcdef01234567#egg=r\n",
	"pkg @ file:///tmp/x.whl\n./local\n~/home\nC:\\w\\x.whl\n",
	"pkg --hash=sha256:abc \\\n    --hash=sha256:def\n",
	"last \\",
	"\\",
	"a#b #c\n",
}

// FuzzNormalizeRequirements: the normalised lines are what pip itself
// reads from the text (where python3 with pip is installed), none is
// empty or holds a line break, and writing them to a requirements file
// and reading it back gives them again.
func FuzzNormalizeRequirements(f *testing.F) {
	for _, s := range requirementSeeds {
		f.Add(s)
	}
	oracle := startPipOracle(f)
	f.Fuzz(func(t *testing.T, text string) {
		lines := normalizeRequirements(text)
		for _, l := range lines {
			if l == "" || len(pyLines(l)) != 1 || strings.TrimFunc(l, pySpace) != l {
				t.Fatalf("line %q of %q is empty, spans lines or has outer blanks", l, text)
			}
		}
		file := requirementsFile(lines)
		if again := normalizeRequirements(file); !reflect.DeepEqual(again, lines) {
			t.Fatalf("written and read back:\n%q\nbecame\n%q", lines, again)
		}
		// pip's comment expression takes quadratic time on long blank
		// runs: the comparison is for texts up to 1 KB.
		if oracle == nil || !utf8.ValidString(text) || len(text) > 1024 {
			return
		}
		if want := oracle.lines(t, text); !equalLines(lines, want) {
			t.Fatalf("normalizeRequirements(%q) =\n%q\npip reads\n%q", text, lines, want)
		}
		if want := oracle.lines(t, file); !equalLines(lines, want) {
			t.Fatalf("the written file %q: pip reads\n%q\nwant\n%q", file, want, lines)
		}
	})
}

func equalLines(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// FuzzClassifyRequirements: a rejected text has an option line pip does
// not allow, and a cacheable one names no local file or path.
func FuzzClassifyRequirements(f *testing.F) {
	for _, s := range requirementSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines := normalizeRequirements(text)
		mutable, err := classifyRequirements(lines)
		if err != nil {
			bad := false
			for _, l := range lines {
				if strings.HasPrefix(l, "-") {
					_, ok := reqFileOptions[optionName(l)]
					bad = bad || !ok
				}
			}
			if !bad || mutable != "" {
				t.Fatalf("classifyRequirements(%q) = %q, %v without a disallowed option", lines, mutable, err)
			}
			return
		}
		if mutable != "" && !strings.HasPrefix(mutable, "line ") {
			t.Fatalf("reason %q does not name the line", mutable)
		}
		for _, l := range lines {
			lower := strings.ToLower(l)
			if mutable == "" && (strings.Contains(lower, "file:") || strings.HasPrefix(l, "-e") || strings.HasPrefix(l, "--editable") ||
				strings.HasPrefix(l, "-r") || strings.HasPrefix(l, "-c")) {
				t.Fatalf("%q is cacheable with line %q", lines, l)
			}
		}
	})
}

// FuzzUVLock: every requirement made from a uv.lock is one pip line and
// survives the requirement reader unchanged.
func FuzzUVLock(f *testing.F) {
	f.Add(sampleUVLock)
	f.Add("[[package]]\nname = \"a\"\nversion = \"1\"\nsource = { registry = \"https://pypi.org/simple\" }\n")
	f.Add("[[package]]\nname = \"g\"\nsource = { git = \"https://github.com/o/r?rev=x#0123\" }\n[package.dependencies]\n")
	f.Add("[[package]]\nname = \"m\"\nversion = \"1\"\nsource = { registry = \"r\" }\n[[package]]\nname = \"p\"\n" +
		"dependencies = [\n { name = \"m\", marker = \"sys_platform == 'win32'\" },\n]\n")
	f.Add("[[package]]\nname = \"x # y\"\nversion = \"1\\\\\"\nsource = { url = \"u\" }\n")
	f.Fuzz(func(t *testing.T, lock string) {
		reqs, err := uvLockRequirements(lock)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "uv.lock: ") {
				t.Fatalf("error %q does not say uv.lock", err)
			}
			return
		}
		if len(reqs) == 0 {
			return
		}
		got := normalizeRequirements(strings.Join(reqs, "\n") + "\n")
		if len(got) != len(reqs) {
			t.Fatalf("uv.lock requirements %q read back as %q", reqs, got)
		}
		for i := range reqs {
			if got[i] != strings.Join(strings.FieldsFunc(reqs[i], pySpace), " ") {
				t.Fatalf("uv.lock requirement %q read back as %q", reqs[i], got[i])
			}
		}
	})
}
