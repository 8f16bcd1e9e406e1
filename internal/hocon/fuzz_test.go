package hocon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// sandboxFS serves includes from memory: "/sandbox/x.conf" is "sandbox/x.conf"
// in the map, and nothing of the real file system can be reached.
type sandboxFS struct{ m fstest.MapFS }

func (s sandboxFS) rel(name string) string {
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(name)), "/")
}

func (s sandboxFS) Stat(name string) (fs.FileInfo, error) { return s.m.Stat(s.rel(name)) }
func (s sandboxFS) ReadFile(name string) ([]byte, error)  { return s.m.ReadFile(s.rel(name)) }
func (s sandboxFS) Glob(pattern string) ([]string, error) {
	m, err := fs.Glob(s.m, s.rel(pattern))
	for i := range m {
		m[i] = "/" + m[i]
	}
	return m, err
}

var fuzzFS = sandboxFS{fstest.MapFS{
	"sandbox/a.conf":      {Data: []byte("x = 1\nl = [1]\ninclude \"b.conf\"")},
	"sandbox/b.conf":      {Data: []byte("y = ${x}\nl += 2\nagent { include \"sub/c.conf\" }")},
	"sandbox/sub/c.conf":  {Data: []byte("z { w = ${?y} }\ninclude \"../nothere.conf\"")},
	"sandbox/self.conf":   {Data: []byte("include \"self.conf\"")},
	"sandbox/broken.conf": {Data: []byte("a = \"open")},
}}

// fuzzSeeds are small inputs that reach the corners of the grammar.
var fuzzSeeds = []string{
	"a = 1",
	"{ a: [1, 2, {b: c}], d = \"e\\u00e9\" }",
	"a = ${b}\nb = ${a}",
	"a { b = ${a} }",
	"a = [1]\na += 2\nb = ${a} ${a}\nc = ${b} ${b}",
	"s = xx\nt = ${s}${s}\nu = ${t}${t}\nv = ${u}${u}",
	"o = {a: 1}\np = {x: ${o}, y: ${o}}\nq = {x: ${p}, y: ${p}}",
	"path = ${?path}:x\npath = ${path}:y",
	"x = \"\"\"a\"\"\"\"\ny = http://h:1//z // c",
	"include \"a.conf\"\ninclude required(file(\"self.conf\"))",
	"include \"sub/*.conf\"\ninclude \"broken.conf\"",
	"a.b.\"c.d\" { e += ${?E} }",
	"a = foo \\\n  bar",
	"a = ${x} {y: 1}\na.z = ${a.y}",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*", "*.conf"))
	for _, name := range append(files, more...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	lookup := env(map[string]string{"HOME": "/home/fuzz", "E": "e"})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("/sandbox/fuzz.conf", data, lookup, fuzzFS)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if pe.Msg == "" || pe.File == "" {
				t.Fatalf("error without a message or file: %#v", pe)
			}
			if c != nil {
				t.Fatalf("both a config and an error")
			}
			return
		}
		walkConfig(t, c, "", 0)
	})
}

// walkConfig visits every object through the public API and checks that
// the paths Keys reports can be read back.
func walkConfig(t *testing.T, c *Config, path string, depth int) {
	for _, k := range c.Keys(path) {
		p := displayPath([]string{k})
		if path != "" {
			p = path + "." + p
		}
		if !c.Has(p) {
			t.Fatalf("Keys lists %q but Has(%q) is false", k, p)
		}
		_ = c.String(p, "")
		_, _ = c.Int(p, 0)
		_, _ = c.Bool(p, false)
		_, _ = c.StringList(p)
		if depth < 64 {
			walkConfig(t, c, p, depth+1)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	doubling := func(first, step string) string {
		var b strings.Builder
		b.WriteString("v0 = " + first + "\n")
		for i := 1; i < 60; i++ {
			fmt.Fprintf(&b, "v%d = "+step+"\n", i, i-1, i-1)
		}
		return b.String()
	}
	tests := []struct {
		name, src, msg string
	}{
		{"string doubling", doubling("xxxxxxxx", "${v%d}${v%d}"), "string concatenations exceed"},
		{"array doubling", doubling("[1, 2]", "${v%d} ${v%d}"), "config expands to more than"},
		{"object doubling", doubling("{a: 1}", "{p: ${v%d}, q: ${v%d}}"), "config expands to more than"},
		{"deep arrays", "a = " + strings.Repeat("[", 1000) + strings.Repeat("]", 1000), "nested more than"},
		{"deep objects", strings.Repeat("a {", 1000) + strings.Repeat("}", 1000), "nested more than"},
		{"long key", "a" + strings.Repeat(".a", 1000) + " = 1", "more than"},
		{"include cycle", "include \"self.conf\"", "include cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse("/sandbox/limits.conf", []byte(tt.src), nil, fuzzFS)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error = %v, want one containing %q", err, tt.msg)
			}
		})
	}
}

func TestSandboxIncludes(t *testing.T) {
	t.Parallel()
	c, err := parse("/sandbox/main.conf", []byte("include \"a.conf\""), nil, fuzzFS)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, c, []want{
		{"x", int64(1)},
		{"y", int64(1)},
		{"l", []any{int64(1), int64(2)}},
		{"agent.z.w", int64(1)},
	})
	if _, err := parse("/sandbox/main.conf", []byte("include \"broken.conf\""), nil, fuzzFS); err == nil ||
		!strings.HasPrefix(err.Error(), "/sandbox/broken.conf:1:5: key \"a\"") {
		t.Errorf("error from an included file = %v", err)
	}
}
