// Package api declares the ClearML REST API wire format: the response envelope,
// error codes, the data model (tasks, queues, projects, workers, events) and the
// request and response bodies of every endpoint we serve or call. It holds no
// logic beyond (un)marshalling, so the server and the client share one
// definition of the protocol.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Versions the embedded server claims. Clients learn them from the login token.
const (
	// MaxVersion is the newest API version we serve; any higher request is
	// served by the newest handler, as the reference server does.
	MaxVersion = "2.31"
	// ServerVersion is the ClearML server release we behave like.
	ServerVersion = "2.0.0"
	// DefaultCompany is the single tenant of the embedded server (the
	// reference server's default company id).
	DefaultCompany = "d1bd92a3b039400cbafc60a7a5b1e52b"
)

// Envelope is the body of every API response, success or error.
type Envelope struct {
	Meta Meta            `json:"meta"`
	Data json.RawMessage `json:"data"`
}

// EnvelopeText is an Envelope's encoding around its meta and data, each
// encoded as JSON: Head, meta, Mid, data, Tail. A server writes an answer
// so, rather than encode an Envelope, which would check and copy the
// encoded data once more.
var EnvelopeText = struct{ Head, Mid, Tail []byte }{[]byte(`{"meta":`), []byte(`,"data":`), []byte(`}`)}

// Meta is the envelope's metadata section.
type Meta struct {
	ID            string         `json:"id"`
	Trx           string         `json:"trx"`
	Endpoint      Endpoint       `json:"endpoint"`
	ResultCode    int            `json:"result_code"`
	ResultSubcode int            `json:"result_subcode"`
	ResultMsg     string         `json:"result_msg"`
	ErrorStack    *string        `json:"error_stack"`
	ErrorData     map[string]any `json:"error_data"`
}

// Endpoint names the endpoint that served a call.
type Endpoint struct {
	Name             string `json:"name"`
	RequestedVersion string `json:"requested_version"`
	ActualVersion    string `json:"actual_version"`
}

// Time is a timestamp that marshals as the reference server does: ISO-8601 in
// UTC with microseconds and an explicit "+00:00" offset.
type Time struct{ time.Time }

const timeLayout = "2006-01-02T15:04:05.000000+00:00"

// Now returns the current time truncated to milliseconds, the precision the
// reference server stores.
func Now() Time { return Time{time.Now().UTC().Truncate(time.Millisecond)} }

// NewTime wraps t, truncated to milliseconds.
func NewTime(t time.Time) *Time { return &Time{t.UTC().Truncate(time.Millisecond)} }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(timeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts RFC 3339 with or without fractional seconds, and
// epoch milliseconds.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] != '"' {
		var ms float64
		if err := json.Unmarshal(b, &ms); err != nil {
			return fmt.Errorf("parsing time %s: %w", b, err)
		}
		t.Time = time.UnixMilli(int64(ms)).UTC()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = p
	return nil
}

// ParseTime parses the date formats clients send in filters and documents.
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05", "2006-01-02"} {
		if p, err := time.Parse(layout, s); err == nil {
			return p.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q", s)
}

// StringList is a list of strings that also accepts a single string, as the
// reference server does for id and filter fields.
type StringList []string

// UnmarshalJSON implements json.Unmarshaler.
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var raw []*string
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(StringList, 0, len(raw))
	for _, s := range raw {
		if s != nil {
			out = append(out, *s)
		}
	}
	*l = out
	return nil
}

// ParseVersion parses "2.13" into (2, 13).
func ParseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(a+" "+b, "%d %d", &major, &minor); err != nil {
		return 0, 0, false
	}
	if fmt.Sprintf("%d.%d", major, minor) != a+"."+b {
		return 0, 0, false
	}
	return major, minor, true
}
