package agent

import "testing"

func TestSetupCatcher(t *testing.T) {
	t.Parallel()
	const p = "clearml-agent: cannot run task T1: "
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole line", []string{"Running task id [T1]:\n", p + "could not install: pip failed\n"}, "could not install: pip failed"},
		{"byte by byte", split("x\n" + p + "why\nafter\n"), "why"},
		{"first line", []string{p + "at once\n"}, "at once"},
		{"no newline yet", []string{p + "unfinished"}, ""},
		{"inside a line", []string{"say " + p + "no\n"}, ""},
		{"another task", []string{"clearml-agent: cannot run task T2: no\n"}, ""},
		{"the last one wins", []string{p + "first\n", p + "second\n"}, "second"},
	} {
		c := newSetupCatcher("T1")
		for _, w := range tc.writes {
			if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tc.name, n, err)
			}
		}
		if got := c.Reason(); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
	}
}

func split(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}
