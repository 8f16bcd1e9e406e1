package hocon

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		src       string
		line, col int
		key       string
		msg       string
	}{
		{"unterminated string", "agent {\n    git_user: \"jane\n}", 2, 15, "agent.git_user", "unterminated string"},
		{"unterminated string in array", "x { y = { z = [ {w = \"oops } ] } }", 1, 22, "x.y.z.w", "unterminated string"},
		{"unterminated triple", "a {\n b = \"\"\"abc\n", 2, 6, "a.b", "unterminated multi-line string"},
		{"unterminated object", "a {\n b = 1\n", 1, 3, "a", "unterminated object"},
		{"unterminated array", "a = [1,\n 2", 1, 5, "a", "unterminated array"},
		{"brace in array", "a = [1\n}", 2, 1, "a", "unexpected '}' inside an array"},
		{"stray brace", "a = 1\n}", 2, 1, "", "unexpected '}'"},
		{"stray bracket", "a = 1]", 1, 6, "", "unexpected ']'"},
		{"equals in value", "a = 1 b = 2", 1, 9, "a", "unexpected '='"},
		{"missing value", "a {\n b =\n}", 3, 1, "a.b", "missing value"},
		{"missing separator", "agent {\n  cuda_version \"11.8\"\n}", 2, 16, "agent.cuda_version", "expected ':', '=' or '{'"},
		{"key alone on line", "agent {\n  cuda_version\n}", 2, 15, "agent.cuda_version", "found end of line"},
		{"empty key segment", "a..b = 1", 1, 3, "", "empty key segment"},
		{"trailing dot", "a. = 1", 1, 3, "", "key ends with '.'"},
		{"junk after value", "a { b = {x: 1} y }", 1, 9, "a.b", "cannot concatenate an object with a string"},
		{"junk after object field", "a { x: 1 } y", 1, 12, "", "unexpected 'y' after value"},
		{"junk after root", "{ a = 1 } b", 1, 11, "", "after the closing '}' of the root object"},
		{"array root", "[1, 2]", 1, 1, "", "must be an object"},
		{"unterminated substitution", "a = ${b\nc = 1", 1, 5, "a", "unterminated substitution"},
		{"empty substitution", "a = ${ }", 1, 5, "a", "invalid path in substitution"},
		{"unresolved", "a {\n  b = x\n  c = ${a.d}/y\n}", 3, 7, "a.c", "cannot resolve substitution ${a.d}"},
		{"self cycle", "a = ${a}", 1, 5, "a", "cannot resolve substitution ${a}"},
		{"cycle", "a = ${b}\nb = ${c}\nc = ${a}", 3, 5, "c", "cycle"},
		{"enclosing cycle", "a { b = ${a} }", 1, 9, "a.b", "cycle"},
		{"concat array and string", "a = [1] x", 1, 5, "a", "cannot concatenate an array with a string"},
		{"required url include", "include required(url(\"http://x/y.conf\"))", 1, 1, "", "not supported"},
		{"bad include syntax", "include file(\"x.conf\"", 1, 22, "", "expected ')'"},
		{"triple quoted key", "\"\"\"k\"\"\" = 1", 1, 1, "", "triple quoted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseWithEnv("clearml.conf", []byte(tt.src), env(nil))
			checkParseError(t, err, "clearml.conf", tt.line, tt.col, tt.key, tt.msg)
		})
	}
}

func checkParseError(t *testing.T, err error, file string, line, col int, key, msg string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want *ParseError", err, err)
	}
	if pe.File != file || pe.Line != line || pe.Col != col || pe.Key != key || !strings.Contains(pe.Msg, msg) {
		t.Errorf("error = %s:%d:%d key %q msg %q\nwant   %s:%d:%d key %q msg containing %q",
			pe.File, pe.Line, pe.Col, pe.Key, pe.Msg, file, line, col, key, msg)
	}
	prefix := file + ":"
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("Error() = %q, want prefix %q", err.Error(), prefix)
	}
	if key != "" && !strings.Contains(err.Error(), "key \""+key+"\": ") {
		t.Errorf("Error() = %q does not name key %q", err.Error(), key)
	}
}

func TestErrorFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "errors")
	tests := []struct {
		file      string
		errFile   string // file the error is reported in, when not file itself
		line, col int
		key       string
		msg       string
	}{
		{"unterminated_string.conf", "", 5, 15, "agent.git_user", "unterminated string"},
		{"missing_brace.conf", "", 5, 20, "agent.default_docker", "unterminated object: missing '}'"},
		{"bad_separator.conf", "", 3, 18, "agent.cuda_version", "expected ':', '=' or '{' after the key, found '\"'"},
		{"unresolved.conf", "", 2, 16, "agent.venvs_dir", "cannot resolve substitution ${agent.cache_dir}"},
		{"cycle.conf", "", 3, 8, "agent.b", "substitution ${agent.a} is part of a cycle"},
		{"bad_include.conf", "", 2, 1, "", "cannot include"},
		{"include_cycle.conf", "", 2, 1, "", "include cycle"},
		{"nested_error.conf", "nested_error_part.conf", 5, 5, "sdk.aws.s3.key", "unexpected '}' inside an array"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			errFile := tt.errFile
			if errFile == "" {
				errFile = tt.file
			}
			_, err := ParseFile(filepath.Join(dir, tt.file))
			checkParseError(t, err, filepath.Join(dir, errFile), tt.line, tt.col, tt.key, tt.msg)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  ParseError
		want string
	}{
		{ParseError{File: "clearml.conf", Line: 12, Col: 5, Key: "agent.git_user", Msg: "unterminated string"},
			`clearml.conf:12:5: key "agent.git_user": unterminated string`},
		{ParseError{File: "c.conf", Line: 3, Msg: "bad"}, "c.conf:3: bad"},
		{ParseError{Line: 3, Col: 1, Msg: "bad"}, "<input>:3:1: bad"},
		{ParseError{File: "c.conf", Msg: "bad"}, "c.conf: bad"},
		{ParseError{Key: "a.b", Msg: "bad"}, `key "a.b": bad`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
