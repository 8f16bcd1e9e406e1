// Package args parses the clearml-agent command line the way the Python
// agent's argparse parser does, so that users can swap the binaries and keep
// their command lines.
//
// The engine (this file) is a small, table-driven reimplementation of the
// parts of argparse (CPython 3.11) that the agent uses: long options with
// unique-prefix abbreviations, "--opt=value", single-dash clusters such as
// -dOO, nargs None/?/*/+, count and store_true actions, choices, required
// options, @file argument files (fromfile_prefix_chars='@'), the negative
// number rule (a token such as -5 is a value, not an option) and argparse's
// error wording. The option tables live in commands.go (global options,
// execute) and daemon.go, built from the actions in options.go; every table
// is in upstream's registration order, which argparse uses in "ambiguous
// option" messages. It was checked once (the check is not part of the
// tests) against CPython 3.11's argparse driving a copy of upstream's option
// tables, on some 17,000 generated command lines; the only differences are
// the ones listed below.
//
// Behaviour that mirrors argparse and surprises people:
//
//   - A repeated option replaces the earlier value; it does not append.
//     "--queue a --queue b" gives queues [b], exactly as argparse's default
//     "store" action does for nargs='+'.
//   - "--queue=a b" is an error ("unrecognized arguments: b"): an attached
//     value is the option's only value.
//   - -d means --debug before the sub-command and --detached after "daemon".
//   - Each --uptime/--downtime spec must be one argv element ("17-20 TUE").
//   - Tokens that start with '-' are options unless they look like negative
//     numbers or contain a space.
//
// Deliberate deviations. Apart from --polling-interval, a command line that
// argparse accepts means the same here; the others accept more, or word an
// error differently:
//
//   - Docker arguments. After "--docker IMAGE" (or "--docker=IMAGE") every
//     following token that is not one of this command's own options becomes a
//     docker argument, so "--docker nvidia/cuda:11 -e K=V --ipc=host -v
//     /a:/b --network host --queue q" gives docker [nvidia/cuda:11 -e K=V
//     --ipc=host -v /a:/b --network host] and queues [q]. argparse stops at
//     the first option-like token and fails with "unrecognized arguments".
//     A token still ends the docker arguments when it is one of our options:
//     an exact name (--gpus, -h, -d), an unambiguous prefix of one (--que),
//     "--name=value", or a cluster made only of our short flags (-dOO); a
//     cluster such as -dit is a docker argument. An ambiguous prefix is an
//     error, as everywhere. The one-string form "--docker 'IMAGE ARGS...'"
//     keeps working; splitting it is the daemon's job. Bare "--docker"
//     followed by an unknown option is still an error, as in argparse.
//   - "--" after an option that takes a list (nargs * or +) hands every later
//     token to that option, options included: "--docker IMG -- --gpus all"
//     passes docker's own --gpus. Anywhere else "--" and what follows are
//     "unrecognized arguments", as argparse 3.11 reports. Before the
//     sub-command, "--" ends the global options and the next token is the
//     command (argparse reports "invalid choice: '--'").
//   - --polling-interval takes a float (upstream: int, so its errors say
//     "invalid int value"), and values below 0.5 are raised to 0.5, where
//     upstream raises anything below 5 to 5: "--polling-interval 2" polls
//     every 2 s here and every 5 s upstream. Infinity and NaN are rejected as
//     "invalid float value".
//   - @file nesting is limited to 16 levels and a file to 1 MiB; Python
//     recurses until it crashes and reads any size.
//   - Integers are limited to Go's int; Python's are unbounded.
//   - ParseCommandLine does not check the sub-command name (the Go binary
//     has commands upstream lacks); the caller dispatches and reports.
//   - argparse attributes "unrecognized arguments" to the top-level program
//     ("clearml-agent: error: ...") and lists the unknown tokens from before
//     and after the sub-command together, after the sub-command's own
//     errors. ParseCommandLine reports unknown global options at once, and a
//     sub-command parser reports its own, so the caller's prefix names the
//     parser that found them. Only the wording of failing command lines
//     differs.
//
// Validation that argparse itself does not do (--uptime together with
// --downtime, --services-mode with --dynamic-gpus, --gpus syntax, --stop
// semantics, expanding --config-file) belongs to the callers.
package args

import (
	"errors"
	"regexp"
	"strings"
	"sync"
)

// Error is a command-line mistake. Msg mirrors argparse's wording without the
// "prog: error: " prefix, which the caller adds.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// arity is argparse's nargs.
type arity int

const (
	zeroArgs    arity = iota // store_true, count, help, version
	oneArg                   // nargs=None: exactly one value
	optionalArg              // nargs='?': zero or one value
	anyArgs                  // nargs='*'
	someArgs                 // nargs='+'
)

// option is one row of an option table.
type option struct {
	names    []string // option strings in argparse order, e.g. --detached, -d
	arity    arity
	dest     string   // argparse dest; its upper-case form is the metavar
	choices  []string // shown as the metavar when set
	group    string   // help section; "" is "options"
	help     string
	required bool
	exits    bool // help/version: parsing stops once it is taken
	// dockerTail marks --docker: after its first value, tokens that are not
	// our options are appended (see the package doc).
	dockerTail bool
	// set stores one occurrence's values. For optionalArg without a value
	// vals is nil; for anyArgs without values it is empty. An error's text
	// becomes "argument NAME: <text>".
	set func(vals []string) error
}

// displayName is argparse's _get_action_name: the option strings joined by '/'.
func (o *option) displayName() string { return strings.Join(o.names, "/") }

func (o *option) takesList() bool { return o.arity == anyArgs || o.arity == someArgs }

// parser is an argparse.ArgumentParser without positionals.
type parser struct {
	opts     []*option
	order    []string // every option string in registration order
	index    map[string]*option
	readFile func(name string) ([]byte, error)
}

func newParser(opts []*option, readFile func(string) ([]byte, error)) *parser {
	p := &parser{opts: opts, index: map[string]*option{}, readFile: readFile}
	for _, o := range opts {
		for _, n := range o.names {
			p.order = append(p.order, n)
			p.index[n] = o
		}
	}
	return p
}

// token is one classified argument: argparse's 'A', 'O' or '-' (the first
// "--"; everything after it is 'A').
type token struct {
	s        string
	kind     byte
	opt      *option // nil for an unknown option
	name     string  // the option string it resolved to
	explicit *string // value attached with '=' or in a short cluster
	err      error   // ambiguous abbreviation, raised when reached
}

var negativeNumber = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-\d+$|^-\d*\.\d+$`) })

func (p *parser) classify(args []string) []token {
	toks := make([]token, 0, len(args))
	for i, s := range args {
		if s == "--" {
			toks = append(toks, token{s: s, kind: '-'})
			for _, rest := range args[i+1:] {
				toks = append(toks, token{s: rest, kind: 'A'})
			}
			break
		}
		toks = append(toks, p.classifyOne(s))
	}
	return toks
}

// classifyOne is argparse's _parse_optional.
func (p *parser) classifyOne(s string) token {
	if s == "" || s[0] != '-' {
		return token{s: s, kind: 'A'}
	}
	if o, ok := p.index[s]; ok {
		return token{s: s, kind: 'O', opt: o, name: s}
	}
	if len(s) == 1 {
		return token{s: s, kind: 'A'}
	}
	if name, val, ok := strings.Cut(s, "="); ok {
		if o, found := p.index[name]; found {
			return token{s: s, kind: 'O', opt: o, name: name, explicit: &val}
		}
	}
	matches := p.prefixMatches(s)
	if len(matches) > 1 {
		names := make([]string, len(matches))
		for i, m := range matches {
			names[i] = m.name
		}
		msg := "ambiguous option: " + s + " could match " + strings.Join(names, ", ")
		return token{s: s, kind: 'O', err: &Error{Msg: msg}}
	}
	if len(matches) == 1 {
		return matches[0]
	}
	if negativeNumber().MatchString(s) || strings.Contains(s, " ") {
		return token{s: s, kind: 'A'}
	}
	return token{s: s, kind: 'O'}
}

// prefixMatches is argparse's _get_option_tuples.
func (p *parser) prefixMatches(s string) []token {
	var out []token
	if s[1] == '-' {
		prefix, val, hasVal := strings.Cut(s, "=")
		for _, n := range p.order {
			if strings.HasPrefix(n, prefix) {
				t := token{s: s, kind: 'O', opt: p.index[n], name: n}
				if hasVal {
					v := val
					t.explicit = &v
				}
				out = append(out, t)
			}
		}
		return out
	}
	short, rest := s[:2], s[2:]
	for _, n := range p.order {
		switch {
		case n == short:
			r := rest
			out = append(out, token{s: s, kind: 'O', opt: p.index[n], name: n, explicit: &r})
		case strings.HasPrefix(n, s):
			out = append(out, token{s: s, kind: 'O', opt: p.index[n], name: n})
		}
	}
	return out
}

// ownShortCluster reports whether a single-dash token that classified as
// one of our options parses completely the way argparse would read it (-d,
// -OO, -O=O); such a token ends a docker argument list, while -dit (no -i)
// is a docker argument.
func (p *parser) ownShortCluster(t token) bool {
	opt, explicit := t.opt, t.explicit
	for explicit != nil && opt.arity == zeroArgs {
		if *explicit == "" {
			return false
		}
		next, ok := p.index["-"+(*explicit)[:1]]
		if !ok {
			return false
		}
		rest := (*explicit)[1:]
		opt, explicit = next, &rest
		if rest == "" {
			explicit = nil
		}
	}
	return true
}

func (p *parser) isDockerArg(t token) bool {
	switch {
	case t.kind == 'A':
		return true
	case t.kind != 'O' || t.err != nil:
		return false
	case t.opt == nil:
		return true
	default:
		return t.name[1] != '-' && !p.ownShortCluster(t)
	}
}

// errExit reports that a help or version option was taken.
var errExit = errors.New("args: exit option taken")

type result struct {
	seen   map[*option]bool
	extras []string
	stop   int // top mode: index of the first positional; -1 if none
	exited bool
}

// run parses args. In top mode it stops at the first positional (the
// sub-command); otherwise every positional is an unrecognized argument.
func (p *parser) run(args []string, top bool) (result, []token, error) {
	res := result{seen: map[*option]bool{}, stop: -1}
	toks := p.classify(args)
	if !top {
		for _, t := range toks {
			if t.err != nil {
				return res, toks, t.err
			}
		}
	}
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.err != nil:
			return res, toks, t.err
		case top && (t.kind == 'A' || t.kind == '-'):
			res.stop = i
			return res, toks, nil
		case t.kind == '-':
			for _, r := range toks[i:] {
				res.extras = append(res.extras, r.s)
			}
			i = len(toks)
		case t.kind == 'A' || t.opt == nil:
			res.extras = append(res.extras, t.s)
			i++
		default:
			next, err := p.consume(toks, i, res.seen)
			if errors.Is(err, errExit) {
				res.exited = true
				return res, toks, nil
			}
			if err != nil {
				return res, toks, err
			}
			i = next
		}
	}
	return res, toks, nil
}

type occurrence struct {
	opt  *option
	vals []string
}

// consume is argparse's consume_optional: it takes the option at toks[i]
// and its values, and returns the index after them.
func (p *parser) consume(toks []token, i int, seen map[*option]bool) (int, error) {
	t := toks[i]
	opt, name, explicit := t.opt, t.name, t.explicit
	i++
	var taken []occurrence
	for {
		if explicit != nil {
			if opt.arity != zeroArgs {
				vals, next := p.extend(opt, toks, i, []string{*explicit})
				taken, i = append(taken, occurrence{opt, vals}), next
				break
			}
			if name[1] == '-' || *explicit == "" {
				return i, argError(opt, "ignored explicit argument "+pyRepr(*explicit))
			}
			// A short flag with more letters attached: -dOO is -d -O -O.
			taken = append(taken, occurrence{opt, nil})
			next := "-" + (*explicit)[:1]
			o2, ok := p.index[next]
			if !ok {
				return i, argError(opt, "ignored explicit argument "+pyRepr(*explicit))
			}
			rest := (*explicit)[1:]
			opt, name, explicit = o2, next, &rest
			if rest == "" {
				explicit = nil
			}
			continue
		}
		n := 0
		for i+n < len(toks) && toks[i+n].kind == 'A' {
			n++
		}
		switch opt.arity {
		case zeroArgs:
			n = 0
		case oneArg:
			if n == 0 {
				return i, argError(opt, "expected one argument")
			}
			n = 1
		case optionalArg:
			n = min(n, 1)
		}
		var vals []string
		if opt.arity == optionalArg && n == 0 {
			vals = nil // argparse stores the const
		} else {
			vals = make([]string, 0, n)
			for _, v := range toks[i : i+n] {
				vals = append(vals, v.s)
			}
		}
		vals, i = p.extend(opt, toks, i+n, vals)
		if opt.arity == someArgs && len(vals) == 0 {
			return i, argError(opt, "expected at least one argument")
		}
		taken = append(taken, occurrence{opt, vals})
		break
	}
	for _, oc := range taken {
		seen[oc.opt] = true
		if err := oc.opt.set(oc.vals); err != nil {
			return i, argError(oc.opt, err.Error())
		}
		if oc.opt.exits {
			return i, errExit
		}
	}
	return i, nil
}

// extend applies our two supersets to a list option's values: the docker
// tail and a following "--".
func (p *parser) extend(opt *option, toks []token, i int, vals []string) ([]string, int) {
	if !opt.takesList() {
		return vals, i
	}
	if opt.dockerTail && len(vals) > 0 {
		for i < len(toks) && p.isDockerArg(toks[i]) {
			vals = append(vals, toks[i].s)
			i++
		}
	}
	if i < len(toks) && toks[i].kind == '-' {
		for _, t := range toks[i+1:] {
			vals = append(vals, t.s)
		}
		i = len(toks)
	}
	return vals, i
}

// parseAll runs a sub-command parser over args: @file expansion, options,
// required options, leftovers. exited is true when -h/--help was taken.
func (p *parser) parseAll(args []string) (exited bool, err error) {
	args, err = expandArgFiles(args, p.readFile, 0)
	if err != nil {
		return false, err
	}
	res, _, err := p.run(args, false)
	if err != nil || res.exited {
		return res.exited, err
	}
	var missing []string
	for _, o := range p.opts {
		if o.required && !res.seen[o] {
			missing = append(missing, o.displayName())
		}
	}
	if len(missing) > 0 {
		return false, &Error{Msg: "the following arguments are required: " + strings.Join(missing, ", ")}
	}
	if len(res.extras) > 0 {
		return false, unrecognized(res.extras)
	}
	return false, nil
}

func unrecognized(extras []string) error {
	return &Error{Msg: "unrecognized arguments: " + strings.Join(extras, " ")}
}

func argError(o *option, msg string) error {
	return &Error{Msg: "argument " + o.displayName() + ": " + msg}
}
