// Package logging builds the operator log (slog) in one of three formats:
// human (the default: a short line a person reads), logfmt and JSON (for
// log collectors). The task's own log is a separate stream, not this.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// The formats.
const (
	Human  = "human"
	Logfmt = "logfmt"
	JSON   = "json"
)

// FormatEnv selects the format when the command line does not.
const FormatEnv = "CLEARML_AGENT_LOG_FORMAT"

// ParseFormat checks a format name ("" is human).
func ParseFormat(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", Human, "text":
		return Human, nil
	case Logfmt:
		return Logfmt, nil
	case JSON:
		return JSON, nil
	}
	return "", fmt.Errorf("invalid log format %q (use human, logfmt or json)", s)
}

// ParseLevel reads upstream's level names (DEBUG, INFO, WARNING, ERROR,
// CRITICAL; WARN and FATAL too).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "INFO":
		return slog.LevelInfo, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q (use DEBUG, INFO, WARNING, ERROR or CRITICAL)", s)
}

// New builds a logger writing to w at level in format.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case JSON:
		return slog.New(slog.NewJSONHandler(w, opts))
	case Logfmt:
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(&humanHandler{w: w, level: level, mu: &sync.Mutex{}, now: time.Now})
}

// humanHandler writes "15:04:05 INFO  message key=value ...": local time
// to the second, the level, the message, then the attributes in order,
// values quoted only when they need it.
type humanHandler struct {
	w      io.Writer
	level  slog.Level
	mu     *sync.Mutex
	now    func() time.Time
	prefix string // attributes from WithAttrs, formatted
	group  string // the current group, dotted
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = h.now()
	}
	b.WriteString(t.Format("15:04:05"))
	b.WriteByte(' ')
	lvl := levelName(r.Level)
	b.WriteString(lvl)
	b.WriteString(strings.Repeat(" ", 5-len(lvl)+1))
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		writeAttr(&b, h.group, a)
	}
	c := *h
	c.prefix += b.String()
	return &c
}

func (h *humanHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = joinKey(h.group, name)
	return &c
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARN"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

func joinKey(group, key string) string {
	if group == "" {
		return key
	}
	return group + "." + key
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g = joinKey(group, a.Key)
		}
		for _, ga := range a.Value.Group() {
			writeAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(joinKey(group, a.Key))
	b.WriteByte('=')
	var v string
	switch a.Value.Kind() {
	case slog.KindDuration:
		v = a.Value.Duration().Round(time.Millisecond).String()
	case slog.KindTime:
		v = a.Value.Time().Format(time.RFC3339)
	default:
		v = a.Value.String()
	}
	b.WriteString(quoteIfNeeded(v))
}

// quoteIfNeeded quotes a value with spaces, quotes, = or control
// characters (or an empty one), so that the line stays parseable.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
