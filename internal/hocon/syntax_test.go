package hocon

import (
	"testing"
)

func TestSyntax(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		env     map[string]string
		wants   []want
		missing []string
	}{
		{"braced root", `{ a: 1, b = "x" }`, nil, []want{{"a", int64(1)}, {"b", "x"}}, nil},
		{"braced root with comments", "# top\n{\n a: 1 // c\n}\n# end\n", nil, []want{{"a", int64(1)}}, nil},
		{"empty file", "", nil, []want{{"", map[string]any{}}}, nil},
		{"only comments", "# a\n// b\n", nil, []want{{"", map[string]any{}}}, nil},
		{"object without separator", "a { b { c: 1 } }", nil, []want{{"a.b.c", int64(1)}}, nil},
		{"object with separators", "a = { b : { c = 1 } }", nil, []want{{"a.b.c", int64(1)}}, nil},
		{"quoted key with dot", `"a.b" = 1, a.b = 2`, nil, []want{{`"a.b"`, int64(1)}, {"a.b", int64(2)}}, nil},
		{"quoted and bare pieces", `"a"."b".c = 1`, nil, []want{{"a.b.c", int64(1)}}, nil},
		{"key with spaces", "foo bar = 1", nil, []want{{"foo bar", int64(1)}}, nil},
		{"key with dash and slash", "a-b/c_d = 1", nil, []want{{"a-b/c_d", int64(1)}}, nil},
		{"numeric dotted key", "10.0.1 = x", nil, []want{{"10.0.1", "x"}}, nil},
		{"newline before brace", "a\n{\n b = 1\n}", nil, []want{{"a.b", int64(1)}}, nil},
		{"newline after separator", "a =\n  1", nil, []want{{"a", int64(1)}}, nil},
		{"merge objects", "a { x = 1, y = 2 }\na { y = 3, z = 4 }", nil,
			[]want{{"a", map[string]any{"x": int64(1), "y": int64(3), "z": int64(4)}}}, nil},
		{"merge with dotted", "a { x = 1 }\na.y = 2", nil, []want{{"a", map[string]any{"x": int64(1), "y": int64(2)}}}, nil},
		{"object replaces scalar", "a = 1\na { x = 1 }", nil, []want{{"a", map[string]any{"x": int64(1)}}}, nil},
		{"scalar replaces object", "a { x = 1 }\na = 1", nil, []want{{"a", int64(1)}}, nil},
		{"array replaces array", "a = [1]\na = [2]", nil, []want{{"a", []any{int64(2)}}}, nil},
		{"numbers", "i = 42\nn = -7\np = +3\nf = 1.5\ng = .5\ne = 1e3\nbig = 99999999999999999999\nv = 1.2.3\nh = 0x10", nil,
			[]want{{"i", int64(42)}, {"n", int64(-7)}, {"p", int64(3)}, {"f", 1.5}, {"g", 0.5}, {"e", 1000.0},
				{"big", 1e20}, {"v", "1.2.3"}, {"h", "0x10"}}, nil},
		{"booleans and null", "a = true\nb = False\nc = yes\nd = off\ne = null\nf = NULL", nil,
			[]want{{"a", true}, {"b", false}, {"c", "yes"}, {"d", "off"}, {"e", nil}, {"f", nil}}, nil},
		{"unquoted url", "api_server: http://localhost:8008", nil, []want{{"api_server", "http://localhost:8008"}}, nil},
		{"url then comment", "u = http://h:1/p // note\nv = x#y", nil, []want{{"u", "http://h:1/p"}, {"v", "x"}}, nil},
		{"comment at value start", "a = 1\nb = [ // c\n 2 ]", nil, []want{{"b", []any{int64(2)}}}, nil},
		{"unquoted with spaces", "a = foo bar   baz  ", nil, []want{{"a", "foo bar   baz"}}, nil},
		{"unquoted ends at comma", "a = foo bar, b = 2", nil, []want{{"a", "foo bar"}, {"b", int64(2)}}, nil},
		{"unquoted ends at brace", "o { a = x y }", nil, []want{{"o.a", "x y"}}, nil},
		{"number in concatenation", "a = 1.50 GB\nb = 1 2", nil, []want{{"a", "1.50 GB"}, {"b", "1 2"}}, nil},
		{"quoted concatenation", `a = "x" "y"` + "\n" + `b = "x"y`, nil, []want{{"a", "x y"}, {"b", "xy"}}, nil},
		{"escapes", `a = "tab\there \"q\" \\ \n\r \= \# \!"`, nil, []want{{"a", "tab\there \"q\" \\ \n\r = # !"}}, nil},
		{"escapes kept as pyhocon does", `a = "\bword\b \d+ \/ \u00e9 C:\Users"`, nil,
			[]want{{"a", `\bword\b \d+ \/ \u00e9 C:\Users`}}, nil},
		{"raw unicode", "a = \"é 😀\"\nb = naïve", nil, []want{{"a", "é 😀"}, {"b", "naïve"}}, nil},
		{"unquoted escapes", `a = C:\Users\me\#1`, nil, []want{{"a", `C:\Users\me#1`}}, nil},
		{"line continuation", "a = one \\\n    two", nil, []want{{"a", "one two"}}, nil},
		{"triple quoted", "a = \"\"\"x\n  \"y\" \\n\n\"\"\"", nil, []want{{"a", "x\n  \"y\" \\n\n"}}, nil},
		{"triple quoted extra quotes", `a = """"x""""`, nil, []want{{"a", `"x"`}}, nil},
		{"empty quoted", `a = ""`, nil, []want{{"a", ""}}, nil},
		{"arrays", "a = [1, \"two\", [3], {x: 4}]\nb = [\n 1\n 2,\n\n 3,\n]\nc = []\nd = [1,,2]", nil,
			[]want{{"a", []any{int64(1), "two", []any{int64(3)}, map[string]any{"x": int64(4)}}},
				{"b", []any{int64(1), int64(2), int64(3)}}, {"c", []any{}}, {"d", []any{int64(1), int64(2)}}}, nil},
		{"array element concatenation", "a = [foo bar, x]", nil, []want{{"a", []any{"foo bar", "x"}}}, nil},
		{"array concatenation", "a = [1] [2, 3]\nb = ${a} [4]", nil,
			[]want{{"b", []any{int64(1), int64(2), int64(3), int64(4)}}}, nil},
		{"object concatenation", "a = {x: 1} {y: 2}", nil, []want{{"a", map[string]any{"x": int64(1), "y": int64(2)}}}, nil},
		{"append", "a = [1]\na += 2\na += [3]\nb += x", nil,
			[]want{{"a", []any{int64(1), int64(2), []any{int64(3)}}}, {"b", []any{"x"}}}, nil},
		{"append in object", "o { l = [a] }\no { l += b }", nil, []want{{"o.l", []any{"a", "b"}}}, nil},
		{"substitution", "a = 1\nb = ${a}\nc { d = ${b} }\ne = ${c}", nil,
			[]want{{"b", int64(1)}, {"c.d", int64(1)}, {"e", map[string]any{"d": int64(1)}}}, nil},
		{"forward substitution", "b = ${a}\na = 1", nil, []want{{"b", int64(1)}}, nil},
		{"substitution sees final value", "a = 1\nb = ${a}\na = 2", nil, []want{{"b", int64(2)}}, nil},
		{"sibling substitution", "o { x = 1, y = ${o.x} }", nil, []want{{"o.y", int64(1)}}, nil},
		{"quoted substitution path", `"a.b" { c = 1 }` + "\nd = ${\"a.b\".c}", nil, []want{{"d", int64(1)}}, nil},
		{"substitution in string", "home = /h\na = ${home}/foo\nb = \"pre-\"${home}\" x\"", nil,
			[]want{{"a", "/h/foo"}, {"b", "pre-/h x"}}, nil},
		{"env substitution", "a = ${HOME}/x\nb = ${?HOME}", map[string]string{"HOME": "/home/u"},
			[]want{{"a", "/home/u/x"}, {"b", "/home/u"}}, nil},
		{"config wins over env", "HOME = cfg\na = ${HOME}", map[string]string{"HOME": "env"}, []want{{"a", "cfg"}}, nil},
		{"optional missing unsets", "a = ${?NOPE}\nb { c = ${?NOPE} }", nil, []want{{"b", map[string]any{}}}, []string{"a", "b.c"}},
		{"optional missing keeps earlier", "a = 1\na = ${?NOPE}", nil, []want{{"a", int64(1)}}, nil},
		{"optional in concatenation", "a = x ${?NOPE} y\nb = ${?NOPE} 5\nc = [1, ${?NOPE}, 2]", nil,
			[]want{{"a", "x y"}, {"b", int64(5)}, {"c", []any{int64(1), int64(2)}}}, nil},
		{"self reference", "path = /usr/bin\npath = ${path}\":/opt/bin\"", nil, []want{{"path", "/usr/bin:/opt/bin"}}, nil},
		{"self reference optional", "path = ${?path}/x", nil, []want{{"path", "/x"}}, nil},
		{"self reference env", "PATH = ${PATH}:/x", map[string]string{"PATH": "/bin"}, []want{{"PATH", "/bin:/x"}}, nil},
		{"self reference below", "foo { a = 1, b = 2 }\nfoo = ${foo.a}", nil, []want{{"foo", int64(1)}}, nil},
		{"self reference below missing", "foo = 5\nfoo = ${?foo.a}", nil, []want{{"foo", int64(5)}}, nil},
		{"self reference object", "a { x = 1 }\na = ${a} { y = 2 }\na.z = 3", nil,
			[]want{{"a", map[string]any{"x": int64(1), "y": int64(2), "z": int64(3)}}}, nil},
		{"substitution then merge", "base { x = 1, y = 1 }\na = ${base}\na { y = 2 }", nil,
			[]want{{"a", map[string]any{"x": int64(1), "y": int64(2)}}, {"a.y", int64(2)}}, nil},
		{"lookup through merge", "base { x = 1 }\na = ${base}\na.y = 2\nb = ${a.x}\nc = ${a.y}", nil,
			[]want{{"b", int64(1)}, {"c", int64(2)}}, nil},
		{"substitution of array in array", "a = [1]\nb = [${a}, 2]", nil, []want{{"b", []any{[]any{int64(1)}, int64(2)}}}, nil},
		{"include keyword as key", "include = 5", nil, []want{{"include", int64(5)}}, nil},
		{"multiple commas", "a = 1,, b = 2", nil, []want{{"a", int64(1)}, {"b", int64(2)}}, nil},
		{"crlf", "a = 1\r\nb {\r\n c = x y\r\n}\r\n", nil, []want{{"a", int64(1)}, {"b.c", "x y"}}, nil},
		{"bom", "\uFEFFa = 1", nil, []want{{"a", int64(1)}}, nil},
		{"dollar in unquoted", "a = cost$5", nil, []want{{"a", "cost$5"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseWithEnv("test.conf", []byte(tt.src), env(tt.env))
			if err != nil {
				t.Fatalf("parse: %v\nsource:\n%s", err, tt.src)
			}
			checkValues(t, c, tt.wants)
			for _, m := range tt.missing {
				if c.Has(m) {
					v, _ := c.Get(m)
					t.Errorf("%s = %#v, want missing", m, v)
				}
			}
		})
	}
}
