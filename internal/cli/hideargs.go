package cli

import (
	"strings"
	"unsafe"
)

// hideArgValue overwrites, in this process's own command line (what `ps`
// and /proc/PID/cmdline show), the value of option flag given as
// "--flag VALUE" or "--flag=VALUE" (or an unambiguous prefix of it, as the
// argument parser accepts). The Go runtime keeps os.Args in the memory
// the kernel reads the command line from, so writing the bytes hides the
// value; every use of it must have been copied first.
func hideArgValue(args []string, flag string) {
	const minPrefix = len("--git-p") // shortest unambiguous prefix of --git-pass
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return
		}
		name, _, hasValue := strings.Cut(a, "=")
		if len(name) < minPrefix || !strings.HasPrefix(flag, name) {
			continue
		}
		switch {
		case hasValue:
			blank(a[len(name)+1:])
		case i+1 < len(args):
			blank(args[i+1])
			i++
		}
	}
}

// blank writes 'x' over a string's bytes in place.
func blank(s string) {
	if len(s) == 0 {
		return
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	for i := range b {
		b[i] = 'x'
	}
}

// withoutOption returns args without option flag and its value (the forms
// hideArgValue knows).
func withoutOption(args []string, flag string) []string {
	const minPrefix = len("--git-p")
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, hasValue := strings.Cut(a, "=")
		if len(name) >= minPrefix && strings.HasPrefix(flag, name) {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
