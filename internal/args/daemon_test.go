package args

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// daemonWith returns the parse result of a bare "daemon" changed by edit.
func daemonWith(edit func(d *Daemon)) *Daemon {
	d := newDaemon()
	edit(d)
	return d
}

func strs(s ...string) *[]string {
	if s == nil {
		s = []string{}
	}
	return &s
}
func intp(n int) *int { return &n }

func TestParseDaemon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want *Daemon
	}{
		{"empty", nil, newDaemon()},
		{"queue nargs+", []string{"--queue", "a", "b", "c"}, daemonWith(func(d *Daemon) { d.Queues = []string{"a", "b", "c"} })},
		{"queue stops at next option", []string{"--queue", "a", "b", "--foreground"},
			daemonWith(func(d *Daemon) { d.Queues, d.Foreground = []string{"a", "b"}, true })},
		// argparse's store action: the later --queue replaces the earlier.
		{"queue repeated replaces", []string{"--queue", "a", "--queue", "b"}, daemonWith(func(d *Daemon) { d.Queues = []string{"b"} })},
		{"queue=", []string{"--queue=a"}, daemonWith(func(d *Daemon) { d.Queues = []string{"a"} })},
		{"queue negative number is a value", []string{"--queue", "-5", "-a b"},
			daemonWith(func(d *Daemon) { d.Queues = []string{"-5", "-a b"} })},
		{"queue name=spec", []string{"--dynamic-gpus", "--gpus", "0-3", "--queue", "dual=2", "quad=1-4"},
			daemonWith(func(d *Daemon) { d.DynamicGPUs, d.GPUs, d.Queues = true, "0-3", []string{"dual=2", "quad=1-4"} })},
		{"docker bare", []string{"--docker"}, daemonWith(func(d *Daemon) { d.Docker = strs() })},
		{"docker bare then option", []string{"--docker", "--queue", "q"},
			daemonWith(func(d *Daemon) { d.Docker, d.Queues = strs(), []string{"q"} })},
		{"docker image", []string{"--docker", "nvidia/cuda:11"}, daemonWith(func(d *Daemon) { d.Docker = strs("nvidia/cuda:11") })},
		{"docker image and args as one string", []string{"--docker", "nvidia/cuda:11 -e K=V --ipc=host"},
			daemonWith(func(d *Daemon) { d.Docker = strs("nvidia/cuda:11 -e K=V --ipc=host") })},
		{"docker args after image (superset)",
			[]string{"--docker", "nvidia/cuda:11", "-e", "K=V", "--ipc=host", "-v", "/a:/b", "--network", "host", "-it", "--queue", "q"},
			daemonWith(func(d *Daemon) {
				d.Docker = strs("nvidia/cuda:11", "-e", "K=V", "--ipc=host", "-v", "/a:/b", "--network", "host", "-it")
				d.Queues = []string{"q"}
			})},
		{"docker args end at our option", []string{"--docker", "img", "-e", "A=1", "--gpus", "0", "-d", "--foreg"},
			daemonWith(func(d *Daemon) {
				d.Docker, d.GPUs, d.Detached, d.Foreground = strs("img", "-e", "A=1"), "0", true, true
			})},
		{"docker args end at short cluster and =form", []string{"--docker", "img", "-dit", "-OO", "--queue=q"},
			daemonWith(func(d *Daemon) { d.Docker, d.Optimization, d.Queues = strs("img", "-dit"), 2, []string{"q"} })},
		{"docker=image then args", []string{"--docker=img", "-e", "K=V"}, daemonWith(func(d *Daemon) { d.Docker = strs("img", "-e", "K=V") })},
		{"docker -- passes our option names", []string{"--queue", "q", "--docker", "img", "-e", "A", "--", "--gpus", "all", "-h"},
			daemonWith(func(d *Daemon) { d.Queues, d.Docker = []string{"q"}, strs("img", "-e", "A", "--gpus", "all", "-h") })},
		{"double dash after queue", []string{"--queue", "a", "--", "-b", "--stop"}, daemonWith(func(d *Daemon) { d.Queues = []string{"a", "-b", "--stop"} })},
		{"double dash right after queue", []string{"--queue", "--", "-q"}, daemonWith(func(d *Daemon) { d.Queues = []string{"-q"} })},
		{"services-mode bare", []string{"--services-mode"}, daemonWith(func(d *Daemon) { d.ServicesMode = intp(-1) })},
		{"services-mode N", []string{"--services-mode", "3"}, daemonWith(func(d *Daemon) { d.ServicesMode = intp(3) })},
		{"services-mode then option", []string{"--services-mode", "--queue", "s"},
			daemonWith(func(d *Daemon) { d.ServicesMode, d.Queues = intp(-1), []string{"s"} })},
		{"services-mode=N python int", []string{"--services-mode= 1_0 "}, daemonWith(func(d *Daemon) { d.ServicesMode = intp(10) })},
		{"services-mode 0 kept", []string{"--services-mode", "0"}, daemonWith(func(d *Daemon) { d.ServicesMode = intp(0) })},
		{"stop bare", []string{"--stop"}, daemonWith(func(d *Daemon) { d.Stop = strs() })},
		{"stop ids", []string{"--stop", "host:0", "host:1"}, daemonWith(func(d *Daemon) { d.Stop = strs("host:0", "host:1") })},
		{"uptime specs", []string{"--uptime", "17-20 TUE", "9-12 MON"}, daemonWith(func(d *Daemon) { d.Uptime = strs("17-20 TUE", "9-12 MON") })},
		{"downtime bare", []string{"--downtime"}, daemonWith(func(d *Daemon) { d.Downtime = strs() })},
		{"uptime and downtime both parse", []string{"--uptime", "1-2 MON", "--downtime", "3-4 TUE"},
			daemonWith(func(d *Daemon) { d.Uptime, d.Downtime = strs("1-2 MON"), strs("3-4 TUE") })},
		{"-d is detached", []string{"-d"}, daemonWith(func(d *Daemon) { d.Detached = true })},
		{"-O", []string{"-O"}, daemonWith(func(d *Daemon) { d.Optimization = 1 })},
		{"-OO", []string{"-OO"}, daemonWith(func(d *Daemon) { d.Optimization = 2 })},
		{"-O -O", []string{"-O", "-O"}, daemonWith(func(d *Daemon) { d.Optimization = 2 })},
		{"-dOO cluster", []string{"-dOO"}, daemonWith(func(d *Daemon) { d.Detached, d.Optimization = true, 2 })},
		{"-O=O", []string{"-O=O"}, daemonWith(func(d *Daemon) { d.Optimization = 2 })},
		{"log-level upper-cased", []string{"--log-level", "debug"}, daemonWith(func(d *Daemon) { d.LogLevel = "DEBUG" })},
		{"log-level=warn", []string{"--log-level=warn"}, daemonWith(func(d *Daemon) { d.LogLevel = "WARN" })},
		{"abbreviation", []string{"--foreg", "--sto", "--cpu"}, daemonWith(func(d *Daemon) { d.Foreground, d.Stop, d.CPUOnly = true, strs(), true })},
		{"abbreviation with =", []string{"--que=a", "--child=t1"},
			daemonWith(func(d *Daemon) { d.Queues, d.ChildReportTags = []string{"a"}, []string{"t1"} })},
		{"gpus list", []string{"--gpus", "0,1"}, daemonWith(func(d *Daemon) { d.GPUs = "0,1" })},
		{"gpus all", []string{"--gpus", "all"}, daemonWith(func(d *Daemon) { d.GPUs = "all" })},
		{"gpus mig", []string{"--gpus", "0:1"}, daemonWith(func(d *Daemon) { d.GPUs = "0:1" })},
		{"cpu-only", []string{"--cpu-only"}, daemonWith(func(d *Daemon) { d.CPUOnly = true })},
		{"polling 0.5", []string{"--polling-interval", "0.5"},
			daemonWith(func(d *Daemon) { d.PollingInterval, d.PollingIntervalSet = 0.5, true })},
		{"polling int", []string{"--polling-interval", " 30 "},
			daemonWith(func(d *Daemon) { d.PollingInterval, d.PollingIntervalSet = 30, true })},
		{"polling below minimum raised", []string{"--polling-interval", "0.1"},
			daemonWith(func(d *Daemon) { d.PollingInterval, d.PollingIntervalSet = 0.5, true })},
		{"help", []string{"--queue", "a", "--help", "--bogus"}, daemonWith(func(d *Daemon) { d.Queues, d.Help = []string{"a"}, true })},
		{"-h", []string{"-h"}, daemonWith(func(d *Daemon) { d.Help = true })},
		{"every flag", []string{
			"--queue", "q1", "q2", "--order-fairness", "--polling-interval", "7", "--foreground", "--detached",
			"--docker", "img", "--force-current-version", "--standalone-mode", "--services-mode", "2",
			"--child-report-tags", "a", "b", "--create-queue", "--dynamic-gpus", "--status", "--use-owner-token",
			"-O", "--git-user", "u", "--git-pass", "p", "--log-level", "error", "--gpus", "1", "--cpu-only",
		}, &Daemon{
			Queues: []string{"q1", "q2"}, OrderFairness: true, PollingInterval: 7, PollingIntervalSet: true,
			Foreground: true, Detached: true, Docker: strs("img"), ForceCurrentVersion: true, StandaloneMode: true,
			ServicesMode: intp(2), ChildReportTags: []string{"a", "b"}, CreateQueue: true, DynamicGPUs: true,
			Status: true, UseOwnerToken: true, Optimization: 1, GitUser: "u", GitPass: "p", LogLevel: "ERROR",
			GPUs: "1", CPUOnly: true,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDaemon(tc.argv)
			if err != nil {
				t.Fatalf("ParseDaemon(%q) error: %v", tc.argv, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseDaemon(%q) =\n %+v\nwant\n %+v", tc.argv, *got, *tc.want)
			}
		})
	}
}

func TestParseDaemonErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"unknown option", []string{"--bogus"}, "unrecognized arguments: --bogus"},
		{"unknown option and value", []string{"--bogus", "x", "--foreground"}, "unrecognized arguments: --bogus x"},
		{"stray positional", []string{"--foreground", "oops"}, "unrecognized arguments: oops"},
		{"queue=a b", []string{"--queue=a", "b"}, "unrecognized arguments: b"},
		{"queue then unknown", []string{"--queue", "a b", "-x"}, "unrecognized arguments: -x"},
		{"queue without value", []string{"--queue", "--foreground"}, "argument --queue: expected at least one argument"},
		{"queue -- nothing", []string{"--queue", "--"}, "argument --queue: expected at least one argument"},
		{"gpus without value", []string{"--gpus"}, "argument --gpus: expected one argument"},
		{"gpus before option", []string{"--gpus", "--cpu-only"}, "argument --gpus: expected one argument"},
		{"gpus -- value", []string{"--gpus", "--", "0"}, "argument --gpus: expected one argument"},
		{"bare docker then docker arg", []string{"--docker", "-e", "K=V"}, "unrecognized arguments: -e K=V"},
		{"double dash after flag", []string{"--foreground", "--", "x"}, "unrecognized arguments: -- x"},
		{"double dash after services-mode", []string{"--services-mode", "--"}, "unrecognized arguments: --"},
		{"ambiguous", []string{"--s"}, "ambiguous option: --s could match --standalone-mode, --services-mode, --stop, --status"},
		{"ambiguous beats earlier errors", []string{"--gpus", "--do"}, "ambiguous option: --do could match --downtime, --docker"},
		{"ambiguous inside docker args", []string{"--docker", "img", "--s"},
			"ambiguous option: --s could match --standalone-mode, --services-mode, --stop, --status"},
		{"services-mode not int", []string{"--services-mode", "abc"}, "argument --services-mode: invalid int value: 'abc'"},
		{"services-mode=", []string{"--services-mode="}, "argument --services-mode: invalid int value: ''"},
		{"services-mode float", []string{"--services-mode", "2.5"}, "argument --services-mode: invalid int value: '2.5'"},
		{"log-level invalid", []string{"--log-level", "loud"},
			"argument --log-level: invalid choice: 'LOUD' (choose from 'DEBUG', 'INFO', 'WARN', 'WARNING', 'ERROR', 'CRITICAL')"},
		{"polling not a number", []string{"--polling-interval", "soon"}, "argument --polling-interval: invalid float value: 'soon'"},
		{"polling inf", []string{"--polling-interval", "inf"}, "argument --polling-interval: invalid float value: 'inf'"},
		{"polling hex", []string{"--polling-interval", "0x10"}, "argument --polling-interval: invalid float value: '0x10'"},
		{"polling negative", []string{"--polling-interval", "-3"},
			"argument --polling-interval: -3 is negative: give the seconds between polls (0.5 or more)"},
		{"services-mode negative", []string{"--services-mode", "-3"},
			"argument --services-mode: -3 is negative: give the most tasks to run at once, or no value for no limit"},
		{"flag with value", []string{"--foreground=1"}, "argument --foreground: ignored explicit argument '1'"},
		{"short flag with unknown letters", []string{"-dx"}, "argument --detached/-d: ignored explicit argument 'x'"},
		{"short flag with =", []string{"-d="}, "argument --detached/-d: ignored explicit argument ''"},
		{"help with letters", []string{"-hx"}, "argument -h/--help: ignored explicit argument 'x'"},
		{"error before help", []string{"--gpus", "--help"}, "argument --gpus: expected one argument"},
		{"execute-only option", []string{"--id", "x"}, "unrecognized arguments: --id x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDaemon(tc.argv)
			e, ok := err.(*Error)
			if !ok || e.Msg != tc.want {
				t.Fatalf("ParseDaemon(%q) = %+v, %v; want error %q", tc.argv, got, err, tc.want)
			}
		})
	}
}

func TestParseDaemonArgFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.txt")
	outer := filepath.Join(dir, "outer.txt")
	// One argument per line; a blank line is an empty argument, as in argparse.
	if err := os.WriteFile(inner, []byte("--uptime\n17-20 TUE\r\n9-12 MON\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outer, []byte("--queue\na\n\nb\n@"+inner+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ParseDaemon([]string{"--foreground", "@" + outer, "-d"})
	if err != nil {
		t.Fatal(err)
	}
	want := daemonWith(func(d *Daemon) {
		d.Foreground, d.Detached = true, true
		d.Queues = []string{"a", "", "b"}
		d.Uptime = strs("17-20 TUE", "9-12 MON")
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", *got, *want)
	}

	_, err = ParseDaemon([]string{"@" + filepath.Join(dir, "missing")})
	if wantMsg := "[Errno 2] No such file or directory: '" + filepath.Join(dir, "missing") + "'"; err == nil || err.Error() != wantMsg {
		t.Errorf("missing file: err = %v, want %q", err, wantMsg)
	}
}

func TestArgFileNestingLimit(t *testing.T) {
	t.Parallel()
	self := func(string) ([]byte, error) { return []byte("--foreground\n@loop\n"), nil }
	_, err := parseDaemon([]string{"@loop"}, self)
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 16 levels") {
		t.Fatalf("err = %v, want a nesting error", err)
	}
}

func TestDaemonUsageListsEveryFlag(t *testing.T) {
	t.Parallel()
	usage := DaemonUsage()
	for _, o := range daemonOptions(newDaemon()) {
		for _, n := range o.names {
			if !strings.Contains(usage, n) {
				t.Errorf("DaemonUsage() lacks %s", n)
			}
		}
	}
	for _, want := range []string{"usage: clearml-agent daemon [-h]", "--queue QUEUES [QUEUES ...]",
		"--services-mode [SERVICES_MODE]", "--detached, -d", "\nDocker support:\n"} {
		if !strings.Contains(usage, want) {
			t.Errorf("DaemonUsage() lacks %q", want)
		}
	}
	for _, line := range strings.Split(usage, "\n") {
		if len(line) > usageWidth {
			t.Errorf("line longer than %d: %q", usageWidth, line)
		}
	}
}

// FuzzParseDaemon checks that no command line panics, that results are
// deterministic, and that every failure is an *Error. The input is split
// into arguments at NUL bytes; @file arguments read the input itself, so
// nesting and odd file contents are exercised without touching the disk.
func FuzzParseDaemon(f *testing.F) {
	for _, seed := range []string{
		"--queue\x00a\x00b",
		"--docker\x00img\x00-e\x00K=V\x00--ipc=host\x00--queue\x00q",
		"--docker=img\x00--\x00--gpus\x00all",
		"--services-mode\x00abc",
		"-dOO\x00--foreg\x00--s",
		"--log-level\x00debug\x00--polling-interval\x000.5",
		"@self",
		"--uptime\x0017-20 TUE\x00--downtime",
		"-hx",
		"--queue=\x00--=\x00-\x00--\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		argv := strings.Split(in, "\x00")
		read := func(name string) ([]byte, error) {
			if name == "missing" {
				return nil, errors.New("no such file")
			}
			return []byte(in), nil
		}
		d1, err1 := parseDaemon(argv, read)
		d2, err2 := parseDaemon(argv, read)
		if !reflect.DeepEqual(d1, d2) || !reflect.DeepEqual(err1, err2) {
			t.Fatalf("nondeterministic result for %q", argv)
		}
		if err1 != nil {
			var e *Error
			if !errors.As(err1, &e) || d1 != nil {
				t.Fatalf("parseDaemon(%q) = %v, %v", argv, d1, err1)
			}
			return
		}
		if d1 == nil {
			t.Fatalf("parseDaemon(%q) returned nil without error", argv)
		}
		if !d1.Help && d1.PollingInterval < MinPollingInterval {
			t.Fatalf("polling interval %g below minimum", d1.PollingInterval)
		}
		_, _ = parseExecute(argv, read)
		_, _, _, _ = parseCommandLine(argv, read)
	})
}
