package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/goclearml/agent/internal/api"
)

// pathExp is the reference server's endpoint grammar: optional version
// segment, service.action, optional trailing slash.
var pathExp = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^/?(?:v(\d+\.\d+)/)?([a-zA-Z_]\w*)\.([a-zA-Z_]\w*)/?$`)
})

// versionSegment catches a malformed version ("v2.x/"), which is 400/2.
var versionSegment = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/?v[^/]*/[a-zA-Z_]\w*\.[a-zA-Z_]\w*/?$`) })

// parsePath splits a request path into endpoint name and requested version.
func parsePath(path string) (name, version string, err *api.Error) {
	m := pathExp().FindStringSubmatch(path)
	if m == nil {
		if versionSegment().MatchString(path) {
			return "", "", api.ErrInvalidVersion.New("", "path", path)
		}
		return "", "", &api.Error{Code: 400, Msg: "Invalid request path " + path}
	}
	version = m[1]
	if version == "" {
		version = api.MaxVersion
	}
	return m[2] + "." + m[3], version, nil
}

// call is one API request being served.
type call struct {
	ctx      context.Context
	endpoint string
	version  string
	major    int
	minor    int
	ident    api.Identity
	// claims are the presented token's; nil when the caller sent a key pair.
	claims *tokenClaims
	worker string // X-ClearML-Worker header
	realIP string
	header map[string][]string
	// respHeader is the answer's header (for cookies).
	respHeader http.Header
	// body is the request body as a JSON object (query parameters merged).
	body []byte
	// stream is the unread body of a batch endpoint (JSON lines).
	stream io.Reader
	// release gives a large body's share of the body budget back, after
	// the answer (nil for a small body).
	release func()
	// fields is body decoded generically, built on first use.
	fields map[string]any
	// decodeCost is the heap that decoding body may take (measureJSON).
	decodeCost int64
}

// below reports whether the requested version is lower than major.minor.
func (c *call) below(major, minor int) bool {
	return c.major < major || (c.major == major && c.minor < minor)
}

// decode reads the body into v. A type mismatch is a validation error, as in
// the reference server; unknown fields are ignored.
func (c *call) decode(v any) error {
	if len(c.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "body"
			}
			return api.ErrValidation.New(fmt.Sprintf("field %s: expected %s, got %s", field, te.Type, te.Value))
		}
		return api.ErrValidation.New(err.Error())
	}
	return nil
}

// raw returns the body as a generic map (numbers as json.Number).
func (c *call) raw() map[string]any {
	if c.fields == nil {
		c.fields = map[string]any{}
		if len(c.body) > 0 {
			d := json.NewDecoder(bytes.NewReader(c.body))
			d.UseNumber()
			_ = d.Decode(&c.fields) // validated when the body was read
		}
	}
	return c.fields
}

// parseBody validates the JSON body and merges the query parameters into
// it.
func parseBody(c *call, body []byte, query url.Values) *api.Error {
	body = replaceNULEscapes(bytes.TrimSpace(body))
	if bytes.Equal(body, []byte("null")) {
		body = nil // a JSON null body means "no fields"
	}
	if len(body) > 0 {
		if body[0] != '{' {
			return api.ErrBadRequest.New("", "error", "request body must be a JSON object")
		}
		if !json.Valid(body) {
			return &api.Error{Code: 400, Msg: "Invalid JSON: " + jsonError(body), Data: map[string]any{}}
		}
		sh := measureJSON(body)
		if sh.longest > MaxListItems {
			return api.ErrValidation.New(fmt.Sprintf("a list in the request has %d items; the limit is %d", sh.longest, MaxListItems))
		}
		if err := sh.tooDense(len(body)); err != nil {
			return api.ErrValidation.New(err.Error())
		}
		c.decodeCost = sh.cost
	}
	if len(query) == 0 {
		c.body = body
		return nil
	}
	if n := querySegments(query); n > maxQuerySegments {
		return api.ErrValidation.New(fmt.Sprintf("the query names %d fields; the limit is %d", n, maxQuerySegments))
	}
	fields := map[string]any{}
	if len(body) > 0 {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&fields); err != nil {
			return &api.Error{Code: 400, Msg: "Invalid JSON: " + err.Error(), Data: map[string]any{}}
		}
	}
	mergeQuery(fields, query)
	merged, err := json.Marshal(fields)
	if err != nil {
		return api.ErrBadRequest.New(err.Error())
	}
	c.body = merged
	c.fields = fields
	return nil
}

func jsonError(body []byte) string {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err.Error()
	}
	return "malformed body"
}

// MaxListItems is the most items any list in a request body may have (ids
// for tasks.get_all, models.delete_many and the like, tags, filter values).
// Larger lists are refused with 400/12 before anything runs: no client
// needs them, and matching documents against them costs time in
// proportion. Batch endpoints (events.add_batch) are bounded by the body
// size instead.
const MaxListItems = 100_000

// maxQuerySegments bounds the fields (the dotted parts of every key) a
// query string may name: each makes an object of the merged body.
const maxQuerySegments = 1000

// querySegments counts the fields a query names, with its dotted parts.
func querySegments(query url.Values) int {
	n := 0
	for key, values := range query {
		n += strings.Count(key, ".") + len(values)
	}
	return n
}

// mergeQuery adds query parameters to fields with the reference server's
// conversions: numbers and booleans are typed, repeated keys and keys ending
// in [] become lists, dotted keys make nested objects.
func mergeQuery(fields map[string]any, query url.Values) {
	for key, values := range query {
		key = strings.ReplaceAll(key, "\x00", "\uFFFD") // see replaceNULEscapes
		list := strings.HasSuffix(key, "[]")
		key = strings.TrimSuffix(key, "[]")
		var v any
		if list || len(values) > 1 {
			items := make([]any, len(values))
			for i, s := range values {
				items[i] = convertQueryValue(s)
			}
			v = items
		} else {
			v = convertQueryValue(values[0])
		}
		target := fields
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := target[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				target[p] = next
			}
			target = next
		}
		target[parts[len(parts)-1]] = v
	}
}

func convertQueryValue(s string) any {
	switch s {
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	if s != "" && strings.Count(s, ".") <= 1 && strings.Trim(s, "0123456789.") == "" && s != "." {
		if !strings.Contains(s, ".") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n
			}
		} else if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD") // see replaceNULEscapes
}

// replaceNULEscapes turns the JSON escape \u0000 into \ufffd in a body.
// PostgreSQL text cannot hold NUL (a lookup or insert of such a string
// failed with a 500 there while SQLite accepted it), and no client needs
// NUL in a value: the agent's console output is the one place it shows up,
// and a replacement character reads the same there.
func replaceNULEscapes(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if bytes.HasPrefix(b[i:], []byte(`\u0000`)) {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		out = append(out, b[i], b[i+1]) // any other escape, e.g. \\ before u0000
		i++
	}
	return out
}
