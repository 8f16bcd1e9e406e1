package hocon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeFiles creates files (name -> content) under a new temporary
// directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestIncludes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		wants   []want
		missing []string
	}{
		{
			name: "include inside an object is relative to it",
			files: map[string]string{
				"main.conf":   "agent {\n  include \"docker.conf\"\n  worker_name = w\n}",
				"docker.conf": "default_docker { image: \"ubuntu:22.04\" }\nworker_name = from-include",
			},
			wants:   []want{{"agent.default_docker.image", "ubuntu:22.04"}, {"agent.worker_name", "w"}},
			missing: []string{"default_docker"},
		},
		{
			name: "later fields override included ones and vice versa",
			files: map[string]string{
				"main.conf": "a = 1\ninclude \"x.conf\"\nc = 3",
				"x.conf":    "a = 10\nb = 20\nc = 30",
			},
			wants: []want{{"a", int64(10)}, {"b", int64(20)}, {"c", int64(3)}},
		},
		{
			name: "required file include and nested directories",
			files: map[string]string{
				"main.conf":       "include required(file(\"sub/one.conf\"))",
				"sub/one.conf":    "include \"two.conf\"\none = 1",
				"sub/two.conf":    "two = ${one}",
				"sub/ignored.txt": "not = included",
			},
			wants:   []want{{"one", int64(1)}, {"two", int64(1)}},
			missing: []string{"not"},
		},
		{
			name: "glob include in name order",
			files: map[string]string{
				"main.conf":        "include \"conf.d/*.conf\"",
				"conf.d/10-a.conf": "x = a\nlist = [a]",
				"conf.d/20-b.conf": "x = b\nlist += b",
			},
			wants: []want{{"x", "b"}, {"list", []any{"a", "b"}}},
		},
		{
			name: "missing and unsupported optional includes are ignored",
			files: map[string]string{
				"main.conf": "include \"nope.conf\"\ninclude file(\"nope2.conf\")\ninclude url(\"https://example.com/x.conf\")\n" +
					"include classpath(\"x.conf\")\ninclude \"sub\"\ninclude \"none/*.conf\"\na = 1",
				"sub/x.conf": "",
			},
			wants: []want{{"a", int64(1)}},
		},
		{
			name: "braced included file and file url",
			files: map[string]string{
				"main.conf": "include \"file://inc.conf\"",
				"inc.conf":  "{\n  a { b = [1, 2] }\n}\n",
			},
			wants: []want{{"a.b", []any{int64(1), int64(2)}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			if strings.Contains(tt.files["main.conf"], "file://") {
				// file:// names are used as given: make this one absolute.
				content := strings.ReplaceAll(tt.files["main.conf"], "file://", "file://"+dir+"/")
				if err := os.WriteFile(filepath.Join(dir, "main.conf"), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := ParseFile(filepath.Join(dir, "main.conf"))
			if err != nil {
				t.Fatal(err)
			}
			checkValues(t, c, tt.wants)
			for _, m := range tt.missing {
				if c.Has(m) {
					t.Errorf("%s is set, want missing", m)
				}
			}
		})
	}
}

func TestIncludeErrors(t *testing.T) {
	t.Parallel()
	deep := map[string]string{"main.conf": "include \"d0.conf\""}
	for i := 0; i < 30; i++ {
		deep["d"+strconv.Itoa(i)+".conf"] = "include \"d" + strconv.Itoa(i+1) + ".conf\""
	}
	tests := []struct {
		name    string
		files   map[string]string
		errFile string
		line    int
		msg     string
	}{
		{"required missing", map[string]string{"main.conf": "a = 1\ninclude required(\"gone.conf\")"}, "main.conf", 2, "cannot include"},
		{"required glob without match", map[string]string{"main.conf": "include required(\"x/*.conf\")"}, "main.conf", 1, "matches no file"},
		{"cycle", map[string]string{"main.conf": "include \"a.conf\"", "a.conf": "x = 1\ninclude \"main.conf\""}, "a.conf", 2, "include cycle"},
		{"too deep", deep, "d15.conf", 1, "nested more than 16 deep"},
		{"error in included file", map[string]string{"main.conf": "agent {\n include \"bad.conf\"\n}", "bad.conf": "\n\nx = \"open"},
			"bad.conf", 3, "unterminated string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			_, err := ParseFile(filepath.Join(dir, "main.conf"))
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error = %v, want *ParseError", err)
			}
			if pe.File != filepath.Join(dir, tt.errFile) || pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error = %v; want in %s line %d containing %q", err, tt.errFile, tt.line, tt.msg)
			}
		})
	}
}
