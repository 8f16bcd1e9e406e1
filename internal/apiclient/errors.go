package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goclearml/agent/internal/api"
)

// ErrUnreachable is matched (errors.Is) by every *UnreachableError: a call
// that failed only with transient errors until its retry budget ran out.
// The daemon reports it as "lost server".
var ErrUnreachable = errors.New("server unreachable")

// ErrNotFound is returned when a lookup finds nothing, e.g. TaskStatus for
// a task that does not exist. IsNotFound also matches the server's
// "invalid id" errors.
var ErrNotFound = errors.New("not found")

// UnreachableError says a call gave up after transient failures: network
// errors, timeouts, or retryable statuses (429, 502-599). Err is the last
// of them.
type UnreachableError struct {
	Server   string
	Endpoint string
	Attempts int
	Elapsed  time.Duration
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("server %s unreachable: giving up on %s after %d attempt(s) in %s: %v",
		e.Server, e.Endpoint, e.Attempts, e.Elapsed.Round(time.Millisecond), e.Err)
}

// Unwrap returns the last error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// HTTPError is a response that is not a valid envelope: a proxy's error
// page, a body that is not JSON, or a result_code that disagrees with the
// HTTP status.
type HTTPError struct {
	StatusCode int
	// Excerpt is the start of the body, for the message.
	Excerpt string
	// Reason says what was wrong with the body.
	Reason string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d: %s: %q", e.StatusCode, e.Reason, e.Excerpt)
}

// transportError is a request that got no HTTP answer: connection refused
// or reset, DNS failure, per-attempt timeout, a body cut short.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// LoginError is a failed auth.login. Err is the cause: an *api.Error when the
// server refused, a network error when it could not be reached.
type LoginError struct {
	Server string
	Code   int // HTTP status, 0 when there was no answer
	Msg    string
	Err    error
}

func (e *LoginError) Error() string {
	switch {
	case e.Code != 0:
		return fmt.Sprintf("failed getting token (error %d from %s): %s", e.Code, e.Server, e.Msg)
	case e.Msg != "":
		return e.Msg
	default:
		return fmt.Sprintf("connection error: it seems *api_server* is misconfigured or unreachable. Is this the ClearML API server %s? (%v)", e.Server, e.Err)
	}
}

// Unwrap returns the cause.
func (e *LoginError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is transient, so that trying again later
// may succeed: network errors and timeouts, HTTP 429 and 5xx except an
// enveloped 500 or 501 (a server bug or a missing feature, which a retry
// does not fix; an unenveloped 500 usually comes from a proxy and is
// retried), and calls that already gave up that way (*UnreachableError).
// The caller's own context ending is not retryable.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnreachable) {
		return true
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code == 429 || (ae.Code >= 502 && ae.Code <= 599)
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode == 429 || (he.StatusCode >= 500 && he.StatusCode <= 599)
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// IsUnauthorized reports whether the server refused the credentials or the
// token (HTTP 401), after the one re-login the client already tried.
func IsUnauthorized(err error) bool { return statusOf(err) == 401 }

// IsForbidden reports an HTTP 403 (role or write permission).
func IsForbidden(err error) bool { return statusOf(err) == 403 }

// IsUnknownEndpoint reports the server's 404 for an endpoint (or version of
// it) that it does not serve, e.g. enterprise-only calls.
func IsUnknownEndpoint(err error) bool { return statusOf(err) == 404 }

// IsNotFound reports whether err says the object does not exist: ErrNotFound,
// or the server's invalid-id errors (400/10 generic id, 400/101 task,
// 400/701 queue, 400/401 project).
func IsNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != 400 {
		return false
	}
	switch ae.Subcode {
	case api.ErrInvalidID.Subcode, api.ErrInvalidTaskID.Subcode, api.ErrInvalidQueueID.Subcode, api.ErrInvalidProjectID.Subcode:
		return true
	}
	return false
}

func statusOf(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

// excerpt returns the start of a body for an error message: valid UTF-8,
// whitespace collapsed, at most 200 bytes.
func excerpt(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
