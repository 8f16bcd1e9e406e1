package vcs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IsLiteralScript reports whether a task's script.diff is the script
// itself rather than uncommitted changes: it is non-empty and starts
// neither with "diff " nor with a "submodule " line followed by a diff.
func IsLiteralScript(diff string) bool {
	s := strings.TrimLeft(diff, " \t\r\n")
	if s == "" || strings.HasPrefix(s, "diff ") {
		return false
	}
	if strings.HasPrefix(s, "submodule ") {
		for _, line := range strings.Split(s, "\n")[1:] {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return !strings.HasPrefix(line, "diff ")
		}
	}
	return true
}

// SafeJoin joins rel (a task's working_dir or entry_point) to root and
// fails with an *Error when rel is absolute or climbs out of root with
// "..". Symbolic links are not followed here; see LiteralScript for writes.
func SafeJoin(root, rel string) (string, error) {
	if rel == "" || rel == "." {
		return root, nil
	}
	if strings.ContainsRune(rel, 0) || filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") ||
		strings.HasPrefix(rel, `\`) || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", invalidf("invalid path %q: it must be a relative path inside %s", rel, root)
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

// LiteralScript handles a task without a repository whose script.diff is
// the script itself: it writes script to dir/<entryPoint> (creating dir) and
// returns the file's path. Entry points of the "-m module" form get
// untitled.py, "-c ..." gets untitled.sh, as the Python agent does. An entry
// point that is absolute, escapes dir or leads through a symbolic link out
// of dir is refused. A script starting with "#!" is made executable.
func LiteralScript(dir, entryPoint, script string) (string, error) {
	name := strings.TrimSpace(entryPoint)
	switch {
	case name == "" || name == "-m" || strings.HasPrefix(name, "-m "):
		name = "untitled.py"
	case name == "-c" || strings.HasPrefix(name, "-c "):
		name = "untitled.sh"
	case strings.HasPrefix(name, "-"):
		return "", invalidf("invalid entry point %q: must not start with '-'", entryPoint)
	}
	p, err := SafeJoin(dir, name)
	if err != nil {
		return "", invalidf("invalid entry point %q: it must be a relative path inside the code directory", entryPoint)
	}
	if p == dir {
		return "", invalidf("invalid entry point %q: not a file name", entryPoint)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", &Error{Kind: KindGit, Op: "literal", Reason: fmt.Sprintf("cannot create %s: %v", filepath.Dir(p), err), Err: err}
	}
	if err := insideReal(dir, filepath.Dir(p)); err != nil {
		return "", invalidf("invalid entry point %q: %v", entryPoint, err)
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return "", invalidf("invalid entry point %q: %s exists and is not a regular file", entryPoint, p)
	}
	perm := os.FileMode(0o644)
	if strings.HasPrefix(script, "#!") {
		perm = 0o755
	}
	if err := os.WriteFile(p, []byte(script), perm); err != nil {
		return "", &Error{Kind: KindGit, Op: "literal", Reason: fmt.Sprintf("cannot write the task script %s: %v", p, err), Err: err}
	}
	if err := os.Chmod(p, perm); err != nil {
		return "", &Error{Kind: KindGit, Op: "literal", Reason: fmt.Sprintf("cannot write the task script %s: %v", p, err), Err: err}
	}
	return p, nil
}

// insideReal checks that sub, with symbolic links resolved, is inside root.
func insideReal(root, sub string) error {
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	s, err := filepath.EvalSymlinks(sub)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(r, s)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return errors.New("it leads outside the code directory through a symbolic link")
	}
	return nil
}

// applyAttempts are tried in turn: plain, then tolerant of whitespace and
// of hunk line counts broken by hand edits in the UI, then a three-way
// merge using the blob ids in the diff's index lines.
var applyAttempts = [][]string{
	{"apply", "--unidiff-zero", "--whitespace=nowarn", "-"},
	{"apply", "--unidiff-zero", "--whitespace=nowarn", "--ignore-whitespace", "--recount", "-"},
	{"apply", "--3way", "--whitespace=nowarn", "-"},
}

// applyDiff applies a task's uncommitted changes in the checkout dir, as
// the Python agent does: files named in "--- a/<path>" lines that do not
// exist are created empty first, then git apply reads the diff (plus a
// newline) on stdin.
func applyDiff(ctx context.Context, r *runner, dir, diff string) error {
	r.logf("applying uncommitted changes (%d bytes)", len(diff))
	for _, line := range strings.Split(diff, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "--- ")
		if !ok {
			continue
		}
		name := diffPath(rest)
		rel, ok := strings.CutPrefix(name, "a/")
		if !ok {
			continue
		}
		p, err := SafeJoin(dir, rel)
		if err != nil {
			return &Error{Kind: KindDiff, Op: "diff", Reason: fmt.Sprintf("uncommitted changes name a path outside the repository: %q", rel)}
		}
		if inGitDir(rel) {
			// git's own files (hooks, config) are not the task's to change.
			return &Error{Kind: KindDiff, Op: "diff", Reason: fmt.Sprintf("uncommitted changes name a path inside .git: %q", rel)}
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if os.MkdirAll(filepath.Dir(p), 0o755) == nil && insideReal(dir, filepath.Dir(p)) == nil {
				_ = os.WriteFile(p, nil, 0o644)
			}
		}
	}
	data := []byte(diff + "\n")
	var first error
	for i, args := range applyAttempts {
		_, err := r.run(ctx, dir, data, args...)
		if err == nil {
			if i > 0 {
				r.logf("uncommitted changes applied with git %s", strings.Join(args[:len(args)-1], " "))
			}
			if args[1] == "--3way" {
				_, _ = r.run(ctx, dir, nil, "reset", "--quiet") // keep the changes unstaged like the others
			}
			return nil
		}
		if ctx.Err() != nil {
			return r.fail(KindDiff, "diff", err, "applying uncommitted changes was interrupted")
		}
		if first == nil {
			first = err
		}
		if i+1 < len(applyAttempts) {
			next := applyAttempts[i+1]
			r.logf("git apply failed (%s); retrying with %s", excerpt(errText(err)), strings.Join(next[1:len(next)-1], " "))
		}
	}
	return r.fail(KindDiff, "diff", first, "uncommitted changes do not apply")
}

// diffPath extracts the file name of a "--- " or "+++ " line: it may be
// C-quoted and followed by a tab and a time stamp.
func diffPath(s string) string {
	if strings.HasPrefix(s, `"`) {
		if q, err := strconv.QuotedPrefix(s); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				return u
			}
		}
	}
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " ")
}

// inGitDir reports whether a relative path has a ".git" component (any
// case: case-insensitive file systems), which git keeps its own files in.
func inGitDir(rel string) bool {
	for _, c := range strings.FieldsFunc(filepath.ToSlash(rel), func(r rune) bool { return r == '/' || r == '\\' }) {
		if strings.EqualFold(strings.TrimRight(c, ". "), ".git") {
			return true
		}
	}
	return false
}
