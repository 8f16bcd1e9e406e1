package args

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		argv     []string
		wantG    Global
		wantCmd  string
		wantRest []string
	}{
		{"nothing", nil, Global{}, "", nil},
		{"command only", []string{"daemon"}, Global{}, "daemon", []string{}},
		{"-d before and after", []string{"-d", "daemon", "-d"}, Global{Debug: true}, "daemon", []string{"-d"}},
		{"config file", []string{"--config-file", "~/c.conf", "daemon", "--queue", "q"},
			Global{ConfigFile: "~/c.conf"}, "daemon", []string{"--queue", "q"}},
		{"config file = and abbreviations", []string{"--conf=x", "--deb", "execute", "--id", "t"},
			Global{ConfigFile: "x", Debug: true}, "execute", []string{"--id", "t"}},
		{"global options after command belong to it", []string{"daemon", "--debug", "--config-file", "x"},
			Global{}, "daemon", []string{"--debug", "--config-file", "x"}},
		{"version stops", []string{"--version", "daemon", "--bogus"}, Global{Version: true}, "", nil},
		{"help stops", []string{"-d", "--help", "--bogus"}, Global{Debug: true, Help: true}, "", nil},
		{"-h", []string{"-h"}, Global{Help: true}, "", nil},
		{"-dh cluster", []string{"-dh", "daemon"}, Global{Debug: true, Help: true}, "", nil},
		{"no command after options", []string{"--debug"}, Global{Debug: true}, "", nil},
		{"double dash then command", []string{"-d", "--", "daemon", "--queue", "q"}, Global{Debug: true}, "daemon", []string{"--queue", "q"}},
		{"double dash alone", []string{"--"}, Global{}, "", nil},
		{"unchecked command name", []string{"server", "--listen", ":0"}, Global{}, "server", []string{"--listen", ":0"}},
		{"ambiguity after the command is the command's business", []string{"daemon", "--=x"}, Global{}, "daemon", []string{"--=x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, cmd, rest, err := ParseCommandLine(tc.argv)
			if err != nil {
				t.Fatalf("ParseCommandLine(%q) error: %v", tc.argv, err)
			}
			if g != tc.wantG || cmd != tc.wantCmd || !reflect.DeepEqual(rest, tc.wantRest) {
				t.Errorf("ParseCommandLine(%q) = %+v, %q, %q; want %+v, %q, %q", tc.argv, g, cmd, rest, tc.wantG, tc.wantCmd, tc.wantRest)
			}
		})
	}
}

func TestParseCommandLineErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"--foreground", "daemon"}, "unrecognized arguments: --foreground"},
		{[]string{"--config-file"}, "argument --config-file: expected one argument"},
		{[]string{"--config-file", "-x", "daemon"}, "argument --config-file: expected one argument"},
		{[]string{"--config-file", "--", "daemon"}, "argument --config-file: expected one argument"},
		{[]string{"-dx", "daemon"}, "argument --debug/-d: ignored explicit argument 'x'"},
		{[]string{"--debug=yes", "daemon"}, "argument --debug/-d: ignored explicit argument 'yes'"},
		{[]string{"--=x", "daemon"}, "ambiguous option: --=x could match --help, --version, --config-file, --debug, --log-format"},
		{[]string{"@/nonexistent/args"}, "[Errno 2] No such file or directory: '/nonexistent/args'"},
	}
	for _, tc := range tests {
		_, _, _, err := ParseCommandLine(tc.argv)
		e, ok := err.(*Error)
		if !ok || e.Msg != tc.want {
			t.Errorf("ParseCommandLine(%q) error = %v, want %q", tc.argv, err, tc.want)
		}
	}
}

func TestParseCommandLineArgFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(file, []byte("--debug\ndaemon\n--queue\nq1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, cmd, rest, err := ParseCommandLine([]string{"@" + file, "q2", "-d"})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Debug || cmd != "daemon" || !reflect.DeepEqual(rest, []string{"--queue", "q1", "q2", "-d"}) {
		t.Fatalf("got %+v %q %q", g, cmd, rest)
	}
	d, err := ParseDaemon(rest)
	if err != nil || !d.Detached || !reflect.DeepEqual(d.Queues, []string{"q1", "q2"}) {
		t.Fatalf("ParseDaemon(%q) = %+v, %v", rest, d, err)
	}
}

func TestParseExecute(t *testing.T) {
	t.Parallel()
	got, err := ParseExecute([]string{
		"--id", "abc", "--clone", "--log-file", "/tmp/out", "--disable-monitoring", "--full-monitoring",
		"--require-queue", "--standalone-mode", "--docker", "img", "-e", "A=B", "--git-user", "u", "--git-pass", "p",
		"-OO", "--log-level", "critical", "--gpus", "0", "--cpu-only",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Execute{
		ID: "abc", Clone: true, LogFile: "/tmp/out", DisableMonitoring: true, FullMonitoring: true,
		RequireQueue: true, StandaloneMode: true, Docker: strs("img", "-e", "A=B"), GitUser: "u", GitPass: "p",
		Optimization: 2, LogLevel: "CRITICAL", GPUs: "0", CPUOnly: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", *got, *want)
	}

	got, err = ParseExecute([]string{"--id=t1"})
	if err != nil || !reflect.DeepEqual(got, &Execute{ID: "t1", LogLevel: "INFO"}) {
		t.Errorf("--id=t1: %+v, %v", got, err)
	}
	got, err = ParseExecute([]string{"--help"})
	if err != nil || !got.Help {
		t.Errorf("--help without --id: %+v, %v", got, err)
	}
}

func TestParseExecuteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv []string
		want string
	}{
		{nil, "the following arguments are required: --id"},
		{[]string{"--clone", "stray"}, "the following arguments are required: --id"},
		{[]string{"--id", "t", "stray"}, "unrecognized arguments: stray"},
		{[]string{"--id"}, "argument --id: expected one argument"},
		{[]string{"--id", "t", "--d"}, "ambiguous option: --d could match --disable-monitoring, --docker"},
		{[]string{"--id", "t", "-d"}, "unrecognized arguments: -d"},
		{[]string{"--id", "t", "--log-level", "x"},
			"argument --log-level: invalid choice: 'X' (choose from 'DEBUG', 'INFO', 'WARN', 'WARNING', 'ERROR', 'CRITICAL')"},
	}
	for _, tc := range tests {
		_, err := ParseExecute(tc.argv)
		e, ok := err.(*Error)
		if !ok || e.Msg != tc.want {
			t.Errorf("ParseExecute(%q) error = %v, want %q", tc.argv, err, tc.want)
		}
	}
}

func TestExecuteUsage(t *testing.T) {
	t.Parallel()
	usage := ExecuteUsage()
	for _, o := range executeOptions(&Execute{}) {
		for _, n := range o.names {
			if !strings.Contains(usage, n) {
				t.Errorf("ExecuteUsage() lacks %s", n)
			}
		}
	}
	if !strings.Contains(usage, "[-h] --id TASK_ID [--log-file LOG_FILE]") {
		t.Errorf("usage line: %s", usage)
	}
}

func TestPyRepr(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"abc":           `'abc'`,
		"":              `''`,
		"it's":          `"it's"`,
		`both'"`:        `'both\'"'`,
		"a\\b":          `'a\\b'`,
		"tab\tnl\n":     `'tab\tnl\n'`,
		"\x01\x7f":      `'\x01\x7f'`,
		"é\u00a0\u2028": `'é\xa0\u2028'`,
		"bad\xff":       `'bad\udcff'`,
	}
	for in, want := range tests {
		if got := pyRepr(in); got != want {
			t.Errorf("pyRepr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPyNumbers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"3": 3, " -2 ": -2, "+1_000": 1000, "007": 7} {
		if got, err := pyInt(in); err != nil || got != want {
			t.Errorf("pyInt(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.0", "1__0", "_1", "1_", "0x10", "9999999999999999999999"} {
		if _, err := pyInt(in); err == nil {
			t.Errorf("pyInt(%q) succeeded", in)
		}
	}
	for in, want := range map[string]float64{"0.5": 0.5, ".5": 0.5, "5.": 5, "1e1": 10, " 2_5 ": 25, "-1.5E-1": -0.15} {
		if got, err := pyFloat(in); err != nil || got != want {
			t.Errorf("pyFloat(%q) = %g, %v; want %g", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "e1", "inf", "-Infinity", "nan", "1e999", "0x1p3", "1,5"} {
		if _, err := pyFloat(in); err == nil {
			t.Errorf("pyFloat(%q) succeeded", in)
		}
	}
}

func TestPySplitLines(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"":                nil,
		"a":               {"a"},
		"a\n":             {"a"},
		"a\n\nb":          {"a", "", "b"},
		"a\r\nb\rc\vd":    {"a", "b", "c", "d"},
		"x\u2028y\u0085z": {"x", "y", "z"},
		"\n":              {""},
	}
	for in, want := range tests {
		if got := pySplitLines(in); !reflect.DeepEqual(got, want) {
			t.Errorf("pySplitLines(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestArgFileReadErrors(t *testing.T) {
	t.Parallel()
	failing := func(string) ([]byte, error) { return nil, errors.New("boom") }
	_, err := parseDaemon([]string{"--foreground", "@x"}, failing)
	if err == nil || err.Error() != "boom: 'x'" {
		t.Errorf("err = %v", err)
	}
	// Arguments without '@' never touch the reader.
	d, err := parseDaemon([]string{"--queue", "a@b"}, failing)
	if err != nil || !reflect.DeepEqual(d.Queues, []string{"a@b"}) {
		t.Errorf("got %+v, %v", d, err)
	}
	_, err = osReadFile(t.TempDir())
	if err == nil || !strings.Contains(osErrorText("d", err), "[Errno 21] Is a directory: 'd'") {
		t.Errorf("directory: %v", err)
	}
}
