// Package shellwords splits and quotes command lines the way Python's
// shlex does in POSIX mode, which is how ClearML stores docker arguments
// and setup commands as single strings (container.arguments,
// execution.docker_cmd, CLEARML_AGENT_EXTRA_DOCKER_ARGS).
package shellwords

import (
	"fmt"
	"strings"
)

// Split breaks s into words as shlex.split(s) does: blanks separate
// words; single quotes keep everything literally; double quotes keep
// everything but \" and \\ (other backslashes stay); a backslash outside
// quotes escapes the next character, a newline included. '#' is an
// ordinary character.
func Split(s string) ([]string, error) { return split(s, false) }

// SplitComments is Split where an unquoted '#' begins a comment to the
// end of the line (shlex.split(s, comments=True)).
func SplitComments(s string) ([]string, error) { return split(s, true) }

func split(s string, comments bool) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	const (
		plain = iota
		single
		double
	)
	state := plain
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch state {
		case single:
			if r == '\'' {
				state = plain
			} else {
				cur.WriteRune(r)
			}
		case double:
			switch {
			case r == '"':
				state = plain
			case r == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		default:
			switch {
			case r == ' ' || r == '\t' || r == '\n' || r == '\r':
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
					inWord = false
				}
			case r == '#' && comments:
				// As shlex: a comment also ends the word it starts in.
				for i < len(rs) && rs[i] != '\n' {
					i++
				}
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
					inWord = false
				}
			case r == '\'':
				state, inWord = single, true
			case r == '"':
				state, inWord = double, true
			case r == '\\':
				if i+1 >= len(rs) {
					return nil, fmt.Errorf("splitting %q: no escaped character after the last backslash", s)
				}
				i++
				cur.WriteRune(rs[i])
				inWord = true
			default:
				cur.WriteRune(r)
				inWord = true
			}
		}
	}
	if state != plain {
		return nil, fmt.Errorf("splitting %q: no closing quotation", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Quote returns s as one shell word (shlex.quote).
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Join quotes each word and joins them with spaces (shlex.join).
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
