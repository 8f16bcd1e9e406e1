package pyenv

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// normalizeRequirements reads requirements text exactly as pip's
// requirement-file reader does (pip._internal.req.req_file: the text's
// splitlines(), join_lines, ignore_comments), then collapses the blanks
// inside each line to one space. Order is kept: it can matter to pip.
//
// As in pip: lines break where Python's str.splitlines breaks them (\n,
// \r, \r\n, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029); a line ending in a
// backslash continues on the next one, with every backslash at either end
// of it removed, unless its first non-blank character is '#'; a '#' at the
// start of a line or after a blank starts a comment; blanks are what
// Python's str.isspace calls blanks.
func normalizeRequirements(text string) []string {
	var out []string
	emit := func(line string) {
		if f := strings.FieldsFunc(stripComment(line), pySpace); len(f) > 0 {
			out = append(out, strings.Join(f, " "))
		}
	}
	var cont strings.Builder
	continuing := false
	for _, line := range pyLines(text) {
		comment := strings.HasPrefix(strings.TrimLeftFunc(line, pySpace), "#")
		if strings.HasSuffix(line, `\`) && !comment {
			cont.WriteString(strings.Trim(line, `\`))
			continuing = true
			continue
		}
		if continuing {
			if comment {
				cont.WriteString(" ") // pip's blank before a comment line, so that it stays a comment
			}
			cont.WriteString(line)
			line, continuing = cont.String(), false
			cont.Reset()
		}
		emit(line)
	}
	if continuing {
		emit(cont.String())
	}
	return out
}

// requirementsFile writes normalised lines as a requirements file that
// pip reads back as the same lines: a line ending in a backslash (possible
// after its comment was removed) gets an empty comment, so that pip does
// not join it with the next one.
func requirementsFile(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		if strings.HasSuffix(l, `\`) {
			b.WriteString(" #")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// pyLines splits text as Python's str.splitlines() does.
func pyLines(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if !lineBreak(r) {
			continue
		}
		out = append(out, text[start:i-size])
		if r == '\r' && i < len(text) && text[i] == '\n' {
			i++
		}
		start = i
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

func lineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// pySpace is Python's str.isspace for one character (also what \s
// matches in pip's comment expression).
func pySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// stripComment cuts line at the first '#' that starts it or follows a
// blank (pip's COMMENT_RE, `(^|\s+)#.*$`).
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] != '#' {
			continue
		}
		if prev, _ := utf8.DecodeLastRuneInString(line[:i]); i == 0 || pySpace(prev) {
			return line[:i]
		}
	}
	return line
}
