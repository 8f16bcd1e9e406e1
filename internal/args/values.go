package args

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Limits on @file arguments; Python has neither (it recurses until it
// crashes and reads any size).
const (
	maxArgFileDepth = 16
	maxArgFileSize  = 1 << 20
)

// expandArgFiles is argparse's _read_args_from_files: every argument that
// starts with '@' is replaced by the lines of the named file, recursively.
// Paths are relative to the working directory, not to the including file.
func expandArgFiles(args []string, read func(string) ([]byte, error), depth int) ([]string, error) {
	var out []string
	for i, a := range args {
		if !strings.HasPrefix(a, "@") {
			if out != nil {
				out = append(out, a)
			}
			continue
		}
		if out == nil {
			out = append(make([]string, 0, len(args)), args[:i]...)
		}
		if depth >= maxArgFileDepth {
			return nil, &Error{Msg: "argument file " + pyRepr(a[1:]) + ": @file nesting deeper than " + strconv.Itoa(maxArgFileDepth) + " levels"}
		}
		data, err := read(a[1:])
		if err != nil {
			return nil, &Error{Msg: osErrorText(a[1:], err)}
		}
		lines, err := expandArgFiles(pySplitLines(string(data)), read, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	if out == nil {
		return args, nil
	}
	return out, nil
}

var errTooLarge = errors.New("argument file larger than 1 MiB")

// osReadFile reads an @file for real: at most maxArgFileSize bytes, a
// larger file is an error.
func osReadFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxArgFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxArgFileSize {
		return nil, errTooLarge
	}
	return data, nil
}

// osErrorText renders a file error the way Python's OSError prints:
// "[Errno 2] No such file or directory: 'name'".
func osErrorText(name string, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		text := errno.Error()
		if text != "" {
			r, size := utf8.DecodeRuneInString(text)
			text = string(unicode.ToUpper(r)) + text[size:]
		}
		return fmt.Sprintf("[Errno %d] %s: %s", int(errno), text, pyRepr(name))
	}
	return err.Error() + ": " + pyRepr(name)
}

// pySplitLines is Python's str.splitlines(): no trailing empty line.
func pySplitLines(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			lines = append(lines, s[start:i])
			if r == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				size++
			}
			start = i + size
		}
		i += size
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// pyRepr quotes s the way Python's repr() does for a str. Bytes that are
// not UTF-8 print as \udcXX, as Python's surrogateescape argv decoding does.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\udc%02x`, s[i])
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	b.WriteByte(quote)
	return b.String()
}

var (
	pyIntSyntax   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[+-]?[0-9](_?[0-9])*$`) })
	pyFloatSyntax = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[+-]?([0-9](_?[0-9])*(\.([0-9](_?[0-9])*)?)?|\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?$`)
	})
	pyFloatWords = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?i)[+-]?(inf|infinity|nan)$`) })
)

// pyInt converts like Python's int(str): surrounding whitespace, a sign and
// single underscores between digits are allowed.
func pyInt(s string) (int, error) {
	t := strings.TrimSpace(s)
	if !pyIntSyntax().MatchString(t) {
		return 0, errors.New("invalid int value: " + pyRepr(s))
	}
	n, err := strconv.Atoi(strings.ReplaceAll(t, "_", ""))
	if err != nil {
		return 0, errors.New("invalid int value: " + pyRepr(s))
	}
	return n, nil
}

// pyFloat converts like Python's float(str), except that it rejects
// infinities and NaN, which make no sense for the agent's durations.
func pyFloat(s string) (float64, error) {
	t := strings.TrimSpace(s)
	bad := errors.New("invalid float value: " + pyRepr(s))
	if pyFloatWords().MatchString(t) || !pyFloatSyntax().MatchString(t) {
		return 0, bad
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, bad
	}
	return f, nil
}
