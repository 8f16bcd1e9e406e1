// Package redact recognises secrets and hides them: environment variables
// whose names say they hold one, and a writer that masks known secret
// values in a stream (the daemon's console).
package redact

import (
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "********"

// secretWords mark a variable name as holding a secret when one of its
// '_'-separated words is one of them (AWS_SECRET_ACCESS_KEY, GIT_PASS,
// HF_TOKEN, DB_PASSWORD, OPENAI_API_KEY, ...).
var secretWords = map[string]bool{"SECRET": true, "PASS": true, "PASSWORD": true, "PASSWD": true,
	"TOKEN": true, "KEY": true, "APIKEY": true, "CREDENTIALS": true}

// SecretName reports whether an environment variable's name says it holds
// a secret.
func SecretName(name string) bool {
	for _, w := range strings.Split(strings.ToUpper(name), "_") {
		if secretWords[w] {
			return true
		}
	}
	return false
}

// minSecret is the shortest value treated as a secret: masking "1" or
// "true" everywhere would ruin a log and protect nothing.
const minSecret = 4

// EnvSecrets returns the values of the secret-named variables in env
// ("NAME=value" pairs).
func EnvSecrets(env []string) []string {
	var out []string
	for _, kv := range env {
		name, v, ok := strings.Cut(kv, "=")
		if ok && len(v) >= minSecret && SecretName(name) {
			out = append(out, v)
		}
	}
	return out
}

// Sorted returns the distinct usable secrets, longest first (a secret
// containing another is masked whole).
func Sorted(secrets []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range secrets {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Writer masks secrets in what passes through it. Complete lines are
// masked and written at once; of a partial line, all but the last bytes
// that could start a secret are written, so a secret split between two
// writes is still masked. Close writes the rest.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
	hold    int
	pending []byte
}

// NewWriter masks secrets in what is written to w.
func NewWriter(w io.Writer, secrets []string) *Writer {
	mw := &Writer{w: w}
	for _, s := range Sorted(secrets) {
		mw.secrets = append(mw.secrets, []byte(s))
		mw.hold = max(mw.hold, len(s)-1)
	}
	return mw
}

func (m *Writer) mask(b []byte) []byte {
	for _, s := range m.secrets {
		if bytes.Contains(b, s) {
			b = bytes.ReplaceAll(b, s, []byte(Mask))
		}
	}
	return b
}

// Write implements io.Writer.
func (m *Writer) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	m.pending = append(m.pending, p...)
	cut := bytes.LastIndexByte(m.pending, '\n') + 1
	if cut == 0 && len(m.pending) > 4096+m.hold {
		cut = len(m.pending) - m.hold
	}
	if cut > 0 {
		out := m.mask(append([]byte(nil), m.pending[:cut]...))
		m.pending = append(m.pending[:0], m.pending[cut:]...)
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close writes what is left.
func (m *Writer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 {
		return nil
	}
	_, err := m.w.Write(m.mask(m.pending))
	m.pending = nil
	return err
}
