package logstream

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// event is one log event in upstream's field order.
type event struct {
	Type      string `json:"type"`
	Level     string `json:"level"`
	Task      string `json:"task"`
	Worker    string `json:"worker"`
	Msg       string `json:"msg"`
	Timestamp int64  `json:"timestamp"`
}

// encoder turns messages into JSON lines.
type encoder struct {
	buf  bytes.Buffer
	json *json.Encoder
	ev   event
}

func (e *encoder) init(task, worker string) {
	e.json = json.NewEncoder(&e.buf)
	e.json.SetEscapeHTML(false) // keep "<", ">" and "&" as they are, as Python's json.dumps does
	e.ev = event{Type: "log", Task: task, Worker: worker}
}

// encode returns the event as one JSON line ending in "\n". The result is
// valid until the next call.
func (e *encoder) encode(level, msg string, ts int64) []byte {
	e.buf.Reset()
	e.ev.Level, e.ev.Msg, e.ev.Timestamp = level, msg, ts
	if err := e.json.Encode(&e.ev); err != nil {
		// Only strings and an int: encoding cannot fail.
		panic(err)
	}
	return e.buf.Bytes()
}

// linesIn counts the log lines an encoded event carries: the escaped
// newlines in it, and at least one. The writer and the reader both count
// this way, so that the dropped-lines notice adds up.
func linesIn(line []byte) int64 {
	var n int64
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) {
			if line[i+1] == 'n' {
				n++
			}
			i++
		}
	}
	return max(n, 1)
}

// timestampOf reads an encoded event's timestamp; ok is false when it has
// none.
func timestampOf(line []byte) (int64, bool) {
	var ev struct {
		Timestamp *int64 `json:"timestamp"`
	}
	if json.Unmarshal(line, &ev) != nil || ev.Timestamp == nil {
		return 0, false
	}
	return *ev.Timestamp, true
}

// nextTimestamp returns max(now, last+1) in ms, which keeps a task's
// timestamps strictly increasing, so the server's order by timestamp is the
// write order even when the clock stands still or steps back.
func nextTimestamp(now time.Time, last int64) int64 {
	return max(now.UnixMilli(), last+1)
}

// cutUTF8 returns the longest prefix length of s, at most n bytes, that
// ends on a character boundary (at least one byte, so progress is made).
func cutUTF8(s []byte, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return max(n, 1)
}

// sortLongestFirst orders secrets so that a secret containing another one
// is masked before the shorter one breaks it up.
func sortLongestFirst(secrets []string) {
	slices.SortStableFunc(secrets, func(a, b string) int { return len(b) - len(a) })
}

const mask = "********"

// maskSecrets replaces every secret in s with the mask.
func maskSecrets(s string, secrets []string) string {
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, mask)
		}
	}
	return s
}

// maskSecretsBytes is maskSecrets for a raw buffer.
func maskSecretsBytes(b []byte, secrets []string) []byte {
	for _, sec := range secrets {
		if bytes.Contains(b, []byte(sec)) {
			b = bytes.ReplaceAll(b, []byte(sec), []byte(mask))
		}
	}
	return b
}
