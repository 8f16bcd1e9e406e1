package pyenv

import (
	"reflect"
	"strings"
	"testing"
)

// TestNormalizeRequirementsLikePip: the corners where pip's reader
// differs from a plain "split at \n, drop # comments" (the expected lines
// are what pip 23.2's join_lines and ignore_comments give).
func TestNormalizeRequirementsLikePip(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"comment line ending in a backslash does not continue", "# pinned for CUDA \\\ntorch==2.0\n", []string{"torch==2.0"}},
		{"continuation joins without a blank", "long\\\n-name\n", []string{"long-name"}},
		{"comment inside a continuation", "a \\\n# c\nb\n", []string{"a", "b"}},
		{"backslashes at both ends of a continued line go", "\\\\lead\\\\\ntrail\n", []string{"leadtrail"}},
		{"line ending in a backslash after its comment", "foo \\ # comment\nbar\n", []string{"foo \\", "bar"}},
		{"lone carriage return and form feed break lines", "a\rb\x0cc\u2028d", []string{"a", "b", "c", "d"}},
		{"CRLF", "a\r\n\r\nb\r\n", []string{"a", "b"}},
		{"no-break space before # starts a comment", "x\u00a0#c\n", []string{"x"}},
		{"# inside a word is not a comment", "a#b #c\n", []string{"a#b"}},
		{"text ends inside a continuation", "last \\", []string{"last"}},
		{"a lone backslash", "\\", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := normalizeRequirements(tc.text)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("normalizeRequirements(%q) = %q, want %q", tc.text, got, tc.want)
			}
			if again := normalizeRequirements(requirementsFile(got)); !reflect.DeepEqual(again, got) {
				t.Fatalf("written as %q, read back as %q", requirementsFile(got), again)
			}
		})
	}
}

func TestUVLockRefusesWhatPipCannotRead(t *testing.T) {
	lock := "[[package]]\nname = \"x\"\nversion = \"1 #2\"\nsource = { registry = \"https://pypi.org/simple\" }\n"
	if reqs, err := uvLockRequirements(lock); err == nil || !strings.Contains(err.Error(), "cannot be written as a pip requirement") {
		t.Fatalf("uv.lock with a version pip would cut at its #: %q, %v", reqs, err)
	}
}
