package hocon

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Limits on includes: how deeply they may nest, how many files one parse may
// read in all, and how large one included file may be.
const (
	maxIncludeDepth = 16
	maxIncludes     = 256
	maxIncludeSize  = 16 << 20
)

// includeState is shared by the parsers of one Parse call.
type includeState struct {
	fs    fileSystem
	stack []string // absolute paths of the files being parsed, outermost first
	count int
}

// fileSystem is what includes read; tests substitute a sandbox.
type fileSystem interface {
	Stat(name string) (fs.FileInfo, error)
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

type osFS struct{}

func (osFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (osFS) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// atInclude reports whether an include statement starts at p.off:
// `include` (any letter case, as in pyhocon) then blanks then a quoted
// name or one of file( url( classpath( package( required(.
func (p *parser) atInclude() bool {
	rest := p.src[p.off:]
	if len(rest) < 8 || !bytes.EqualFold(rest[:7], []byte("include")) || !isSpace(rest[7]) {
		return false
	}
	rest = bytes.TrimLeft(rest[7:], " \t")
	if len(rest) > 0 && rest[0] == '"' {
		return true
	}
	for _, w := range []string{"file(", "url(", "classpath(", "package(", "required("} {
		if bytes.HasPrefix(rest, []byte(w)) {
			return true
		}
	}
	return false
}

// parseInclude reads an include statement and returns the fields of the
// included file(s), to be spliced in where the statement stands.
func (p *parser) parseInclude() ([]field, error) {
	start := p.off
	p.off += len("include")
	p.skipSpaces()
	required := false
	if bytes.HasPrefix(p.src[p.off:], []byte("required(")) {
		required = true
		p.off += len("required(")
		p.skipSpaces()
	}
	how := ""
	for _, w := range []string{"file", "url", "classpath", "package"} {
		if bytes.HasPrefix(p.src[p.off:], []byte(w+"(")) {
			how = w
			p.off += len(w) + 1
			p.skipSpaces()
			break
		}
	}
	if p.peek(0) != '"' || bytes.HasPrefix(p.src[p.off:], []byte(`"""`)) {
		return nil, p.errAt(p.off, "include expects a \"quoted\" file name, found %s", p.describe())
	}
	name, err := p.scanQuoted()
	if err != nil {
		return nil, err
	}
	closers := 0
	if how != "" {
		closers++
	}
	if required {
		closers++
	}
	for ; closers > 0; closers-- {
		p.skipSpaces()
		if p.peek(0) != ')' {
			return nil, p.errAt(p.off, "expected ')' in include statement, found %s", p.describe())
		}
		p.off++
	}
	if how == "" {
		switch {
		case strings.HasPrefix(name, "http://"), strings.HasPrefix(name, "https://"):
			how = "url"
		case strings.HasPrefix(name, "file://"):
			name = strings.TrimPrefix(name, "file://")
		}
	}
	switch how {
	case "", "file":
		return p.includeFiles(name, required, start)
	}
	if required {
		return nil, p.errAt(start, "include %s(%q) is not supported", how, name)
	}
	return nil, nil // optional url/classpath/package includes are skipped
}

// includeFiles reads the file name (relative to the including file's
// directory), or every file matching it when it holds glob characters.
func (p *parser) includeFiles(name string, required bool, start int) ([]field, error) {
	if name == "" {
		return nil, p.errAt(start, "include of an empty file name")
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.dir, path)
	}
	paths := []string{path}
	if strings.ContainsAny(name, "*?") {
		m, err := p.st.fs.Glob(path)
		if err != nil {
			return nil, p.errAt(start, "bad include pattern %q: %v", name, err)
		}
		if len(m) == 0 && required {
			return nil, p.errAt(start, "required include %q matches no file", name)
		}
		paths = m
	}
	var out []field
	for _, path := range paths {
		got, err := p.includeOne(path, required, start)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (p *parser) includeOne(path string, required bool, start int) ([]field, error) {
	st := p.st
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	for _, s := range st.stack {
		if s == abs {
			return nil, p.errAt(start, "include cycle: %s -> %s", strings.Join(st.stack, " -> "), abs)
		}
	}
	if len(st.stack) > maxIncludeDepth {
		return nil, p.errAt(start, "includes nested more than %d deep", maxIncludeDepth)
	}
	if st.count++; st.count > maxIncludes {
		return nil, p.errAt(start, "more than %d included files", maxIncludes)
	}
	info, err := st.fs.Stat(path)
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	} else if err == nil && info.Size() > maxIncludeSize {
		err = errors.New("file too large")
	}
	var data []byte
	if err == nil {
		data, err = st.fs.ReadFile(path)
	}
	if err != nil {
		if !required && (errors.Is(err, fs.ErrNotExist) || info != nil) {
			return nil, nil // like pyhocon: a missing optional include is ignored
		}
		return nil, p.errAt(start, "cannot include %s: %v", path, err)
	}
	child := newParser(path, filepath.Dir(path), data, st)
	child.prefix = p.prefix
	st.stack = append(st.stack, abs)
	defer func() { st.stack = st.stack[:len(st.stack)-1] }()
	return child.parseTop()
}
