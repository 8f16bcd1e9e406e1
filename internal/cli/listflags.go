package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// cmdFlags is a flag.FlagSet that also takes list flags the way argparse's
// nargs='+' does, as the SDK's clearml-task command line is written:
// "--args a=1 b=2" gives two values (every token up to the next flag), and
// a repeated flag adds to the list ("--args a=1 --args b=2"). Unlike
// flag.Parse, positional arguments may come between flags ("tasks show ID
// --json"), "--" ends the flags, and names may be written with - or _
// ("--docker-args" is "--docker_args").
type cmdFlags struct {
	fs    *flag.FlagSet
	lists map[string]bool
	usage string // the "Usage: ..." head printed by --help
}

func newFlags(name, usage string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &cmdFlags{fs: fs, lists: map[string]bool{}, usage: usage}
}

// listValue collects a list flag's values.
type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, " ")
}

func (l listValue) Set(s string) error { *l.p = append(*l.p, s); return nil }

// list defines a list flag.
func (f *cmdFlags) list(p *[]string, name, usage string) {
	f.fs.Var(listValue{p}, name, usage)
	f.lists[name] = true
}

var negativeNum = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-\d+$|^-\d*\.\d+$`) })

// isFlag reports whether a token names a flag: it starts with '-', is not
// a lone "-" or a negative number, and has no space (argparse's rule, so
// that "--packages '-e git+https://...'" passes a value).
func isFlag(s string) bool {
	return len(s) > 1 && s[0] == '-' && !negativeNum().MatchString(s) && !strings.Contains(s, " ")
}

// lookup finds a flag by name, trying the other spelling of - and _.
func (f *cmdFlags) lookup(name string) *flag.Flag {
	for _, n := range []string{name, strings.ReplaceAll(name, "-", "_"), strings.ReplaceAll(name, "_", "-")} {
		if fl := f.fs.Lookup(n); fl != nil {
			return fl
		}
	}
	return nil
}

// parse sets the flags in argv and returns the positional arguments. -h
// and --help give flag.ErrHelp.
func (f *cmdFlags) parse(argv []string) ([]string, error) {
	var pos []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			return append(pos, argv[i+1:]...), nil
		}
		if !isFlag(a) {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, val, hasVal := strings.Cut(name, "=")
		if name == "h" || name == "help" {
			return nil, flag.ErrHelp
		}
		fl := f.lookup(name)
		if fl == nil || strings.HasPrefix(name, "-") {
			return nil, fmt.Errorf("unknown flag %s", a)
		}
		set := func(v string) error {
			if err := fl.Value.Set(v); err != nil {
				return fmt.Errorf("invalid value %q for --%s: %v", v, fl.Name, err)
			}
			return nil
		}
		switch {
		case isBoolFlag(fl):
			if !hasVal {
				val = "true"
			}
			if err := set(val); err != nil {
				return nil, err
			}
		case f.lists[fl.Name]:
			n := 0
			if hasVal {
				if err := set(val); err != nil {
					return nil, err
				}
				n++
			}
			for i+1 < len(argv) && argv[i+1] != "--" && !isFlag(argv[i+1]) {
				i++
				if err := set(argv[i]); err != nil {
					return nil, err
				}
				n++
			}
			if n == 0 {
				return nil, fmt.Errorf("--%s needs at least one value", fl.Name)
			}
		default:
			if !hasVal {
				if i+1 >= len(argv) {
					return nil, fmt.Errorf("--%s needs a value", fl.Name)
				}
				i++
				val = argv[i]
			}
			if err := set(val); err != nil {
				return nil, err
			}
		}
	}
	return pos, nil
}

func isBoolFlag(fl *flag.Flag) bool {
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printUsage writes the usage head and one entry per flag.
func (f *cmdFlags) printUsage(w io.Writer) {
	fmt.Fprint(w, f.usage)
	fmt.Fprintln(w, "\nFlags:")
	f.fs.VisitAll(func(fl *flag.Flag) {
		arg, usage := flag.UnquoteUsage(fl)
		if arg == "" {
			arg = "value"
		}
		switch {
		case isBoolFlag(fl):
			arg = ""
		case f.lists[fl.Name]:
			arg = " " + strings.ToUpper(arg) + " [...]"
		default:
			arg = " " + strings.ToUpper(arg)
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s", fl.Name, arg, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
			fmt.Fprintf(w, " (default %s)", fl.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parseArgs parses a sub-command's flags: --help prints the usage on
// stdout and gives errHelp; mistakes become usage errors prefixed with
// the command's name.
func (f *cmdFlags) parseArgs(argv []string, stdout io.Writer) ([]string, error) {
	pos, err := f.parse(argv)
	if errors.Is(err, flag.ErrHelp) {
		f.printUsage(stdout)
		return nil, errHelp
	}
	if err != nil {
		return nil, &UsageError{Msg: f.fs.Name() + ": " + err.Error()}
	}
	return pos, nil
}
