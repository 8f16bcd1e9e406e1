package shellwords

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a  b\tc\n", []string{"a", "b", "c"}},
		{`-e "A=a b" --ipc=host`, []string{"-e", "A=a b", "--ipc=host"}},
		{`'single $x "q"'`, []string{`single $x "q"`}},
		{`"dq \" \\ \$ \x"`, []string{`dq " \ \$ \x`}},
		{"\"x\\\ny\"", []string{"x\\\ny"}},
		{`a\ b c\\d`, []string{"a b", `c\d`}},
		{`""`, []string{""}},
		{`x""y'z'`, []string{"xyz"}},
		{"a#b #c", []string{"a#b", "#c"}},
		{"a\\\nb", []string{"a\nb"}},
	}
	for _, c := range cases {
		got, err := Split(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Split(%q) = %q %v, want %q", c.in, got, err, c.want)
		}
	}
	if got, _ := SplitComments("a b # c d\ne"); !reflect.DeepEqual(got, []string{"a", "b", "e"}) {
		t.Errorf("SplitComments = %q", got)
	}
	for _, bad := range []string{`"open`, `'open`, `end\`} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}

func TestJoinRoundTrips(t *testing.T) {
	t.Parallel()
	for _, words := range [][]string{{"a", "b c", ""}, {`it's`, `"q"`, "$HOME", "a\nb", "-e", "K=V"}} {
		got, err := Split(Join(words))
		if err != nil || !reflect.DeepEqual(got, words) {
			t.Errorf("Split(Join(%q)) = %q %v", words, got, err)
		}
	}
	if Quote("plain-word_1.2/x:y@z") != "plain-word_1.2/x:y@z" {
		t.Error("safe word quoted")
	}
}
