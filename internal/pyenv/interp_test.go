package pyenv

import (
	"context"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not in PATH")
	}
}

func TestFindInterpreter(t *testing.T) {
	t.Parallel()
	needPython(t)
	ctx := context.Background()
	env := pythonEnv(nil)
	path, version, err := FindInterpreter("python3", "")
	if err != nil || !strings.HasPrefix(version, "3.") || !exists(path) {
		t.Fatalf("python3: %q %q %v", path, version, err)
	}
	mm := majorMinor(version)
	var warned []string
	warn := func(m string) { warned = append(warned, m) }

	in, err := findInterpreter(ctx, "python"+mm, "", env, warn)
	if err != nil || majorMinor(in.Version) != mm || len(warned) != 0 {
		t.Fatalf("python%s: %+v %v warnings %v", mm, in, err, warned)
	}
	// Empty binary: default python, then python3.
	if p, v, err := FindInterpreter("", ""); err != nil || v != version || p != path {
		t.Fatalf(`"": %q %q %v`, p, v, err)
	}
	if p, v, err := FindInterpreter("", "python3"); err != nil || v != version || p != path {
		t.Fatalf(`"" with default python3: %q %q %v`, p, v, err)
	}
	// An explicit path is used as is.
	if p, v, err := FindInterpreter(path, ""); err != nil || p != path || v != version {
		t.Fatalf("path %s: %q %q %v", path, p, v, err)
	}
	// A missing version falls back with the upstream warning.
	in, err = findInterpreter(ctx, "python3.99", "", env, warn)
	if err != nil || in.Version != version || len(warned) != 1 ||
		!strings.Contains(warned[0], "Python executable with version '3.99' requested by the Task, not found in path") {
		t.Fatalf("python3.99: %+v %v %v", in, err, warned)
	}
	in, err = findInterpreter(ctx, "python3.99", path, env, warn)
	if err != nil || in.Path != path || len(warned) != 2 {
		t.Fatalf("python3.99 with default %s: %+v %v", path, in, err)
	}
	for _, bad := range []string{"bash", "python3.x", "pythonista", "/nonexistent/python3"} {
		if p, _, err := FindInterpreter(bad, ""); err == nil {
			t.Errorf("%q: found %q, want an error", bad, p)
		} else {
			t.Logf("%q: %v", bad, err)
		}
	}
}

func TestCandidates(t *testing.T) {
	for in, want := range map[string][]string{
		"":       {"python3", "python"},
		"3":      {"python3", "python"},
		"3.10":   {"python3.10", "python3", "python"},
		"3.10.4": {"python3.10.4", "python3.10", "python3", "python"},
	} {
		if got := candidates(in); !reflect.DeepEqual(got, want) {
			t.Errorf("candidates(%q) = %v, want %v", in, got, want)
		}
	}
	if !versionMatches("3.10.4", "3.10") || versionMatches("3.1.4", "3.10") || !versionMatches("3.11.7", "") {
		t.Error("versionMatches")
	}
}

func TestNormalizeRequirements(t *testing.T) {
	got := normalizeRequirements("# header\r\nnumpy==1.26  # pinned\n\n  torch   >= 2.0 ; python_version >= '3.9'\n" +
		"pkg @ https://host/p.whl#sha256=ab\nlong\\\n-name\n--extra-index-url   https://x/simple\n")
	want := []string{"numpy==1.26", "torch >= 2.0 ; python_version >= '3.9'", "pkg @ https://host/p.whl#sha256=ab",
		"long-name", "--extra-index-url https://x/simple"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestClassifyRequirements(t *testing.T) {
	for _, c := range []struct {
		line    string
		mutable bool
		err     string
	}{
		{"numpy==1.26", false, ""},
		{"--index-url http://evil/simple", false, ""},
		{"-ihttp://evil/simple", false, ""},
		{"--extra-index-url=https://u:p@x/simple", false, ""},
		{"--pre", false, ""},
		{"; rm -rf /", false, ""}, // pip rejects it; no shell ever sees it
		{"pkg @ https://host/pkg-1.0.whl", false, ""},
		{"git+https://github.com/o/r.git@0123456789abcdef0123456789abcdef01234567#egg=r", false, ""},
		{"git+https://github.com/o/r.git@main#egg=r", true, ""},
		{"r @ git+ssh://git@github.com/o/r.git", true, ""},
		{"-e .", true, ""},
		{"--editable=git+https://x/r.git", true, ""},
		{"-r base.txt", true, ""},
		{"-c constraints.txt", true, ""},
		{"./wheels/x-1.0-py3-none-any.whl", true, ""},
		{"x @ file:///tmp/x.whl", true, ""},
		{"--prefix=/usr", false, "option --prefix is not allowed"},
		{"--target /etc", false, "option --target is not allowed"},
		{"-t /etc", false, "option -t is not allowed"},
	} {
		mutable, err := classifyRequirements([]string{"six", c.line})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.line, err, c.err)
			}
			continue
		}
		if err != nil || (mutable != "") != c.mutable {
			t.Errorf("%q: mutable %q err %v, want mutable=%v", c.line, mutable, err, c.mutable)
		}
	}
}

func TestCacheKey(t *testing.T) {
	in := &interpreter{Version: "3.11.7", Full: "3.11.7 (main) [GCC]", BasePrefix: "/usr", Pip: "23.2.1"}
	base := cacheKey(in, []string{"a==1", "b"}, []string{"--no-index"}, nil, "12.1", false)
	same := cacheKey(in, normalizeRequirements("a==1   # x\n\n b \n"), []string{"--no-index"}, []string{"PATH=/x"}, "12.1", false)
	if base != same || len(base) != 64 {
		t.Fatalf("equivalent inputs: %s vs %s", base, same)
	}
	tok := func(s string) string {
		return cacheKey(in, nil, []string{"--extra-index-url", "https://" + s + "@pypi.example/simple"}, nil, "", false)
	}
	if tok("u:token1") != tok("u:token2") {
		t.Error("credentials in an index URL change the key")
	}
	other := *in
	other.Full = "3.11.8 (main) [GCC]"
	for name, k := range map[string]string{
		"requirements": cacheKey(in, []string{"a==2", "b"}, []string{"--no-index"}, nil, "12.1", false),
		"order":        cacheKey(in, []string{"b", "a==1"}, []string{"--no-index"}, nil, "12.1", false),
		"pip args":     cacheKey(in, []string{"a==1", "b"}, nil, nil, "12.1", false),
		"cuda":         cacheKey(in, []string{"a==1", "b"}, []string{"--no-index"}, nil, "11.8", false),
		"system site":  cacheKey(in, []string{"a==1", "b"}, []string{"--no-index"}, nil, "12.1", true),
		"python":       cacheKey(&other, []string{"a==1", "b"}, []string{"--no-index"}, nil, "12.1", false),
		"PIP_INDEX_URL": cacheKey(in, []string{"a==1", "b"}, []string{"--no-index"},
			[]string{"PIP_INDEX_URL=https://mirror/simple"}, "12.1", false),
	} {
		if k == base {
			t.Errorf("changing %s keeps the key", name)
		}
	}
}

func TestTailWriterSummary(t *testing.T) {
	var sink strings.Builder
	tw := &tailWriter{w: &sink, max: 3}
	tw.Write([]byte("Looking in links: /x\nERROR: Could not find a version\nERROR: No matching distribution found for foo==9.9\npartial"))
	// ERROR lines, plus the last line (a traceback's exception) when it is not one.
	if got := tw.summary(); got != "ERROR: Could not find a version\nERROR: No matching distribution found for foo==9.9\npartial" {
		t.Fatalf("summary %q", got)
	}
	if !strings.HasSuffix(sink.String(), "partial") {
		t.Fatal("output not passed through")
	}
}

func TestInstallErrorLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ detail, want string }{
		{"ERROR: Could not find a version\nERROR: No matching distribution found for foo==9.9", "pip install failed (exit status 1): ERROR: No matching distribution found for foo==9.9"},
		{"ERROR: Exception:\nTraceback (most recent call last):\n  File \"x\"\npip._vendor.packaging.markers.InvalidMarker: Invalid marker: 'touch CANARY'",
			"pip install failed (exit status 1): pip._vendor.packaging.markers.InvalidMarker: Invalid marker: 'touch CANARY'"},
		{"some output\nlast words", "pip install failed (exit status 1): last words"},
	} {
		e := &InstallError{Tool: "pip install", Err: errors.New("exit status 1"), Detail: tc.detail}
		if got := e.Error(); got != tc.want {
			t.Errorf("InstallError(%q) = %q, want %q", tc.detail, got, tc.want)
		}
	}
}
