package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Sentinel causes of validation errors; test for them with errors.Is.
var (
	// ErrNoServer: no API server is configured. Its text is upstream's.
	ErrNoServer = errors.New("could not find host server definition (missing ~/clearml.conf or environment CLEARML_API_HOST)")
	// ErrInvalidURL: a server address is not an absolute URL of the right
	// scheme.
	ErrInvalidURL = errors.New("not a valid server URL")
	// ErrInvalidMethod: api.http.default_method is not GET, POST or PUT.
	ErrInvalidMethod = errors.New("api.http.default_method variable must be 'get', 'post' or 'put' (any case is allowed)")
	// ErrNegative: an interval is negative.
	ErrNegative = errors.New("must not be negative")
)

// FieldError is a configuration value that failed validation.
type FieldError struct {
	Field string // the configuration key (or environment variable)
	Value string // the offending value; "" when the value is missing
	Err   error  // one of the sentinels above
}

// Error names the field and value; for a missing value the sentinel's text
// already says what is missing and is used alone.
func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s = %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks what Load cannot: a server is configured, the server
// URLs are valid, the HTTP method is known and intervals are not negative.
// Missing credentials are not an error: the server may accept a token, or
// none. All problems are returned, joined; each is a *FieldError.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, value string, err error) {
		errs = append(errs, &FieldError{Field: field, Value: value, Err: err})
	}

	if c.API.Server == "" {
		add("api.api_server", "", ErrNoServer)
	} else if !validURL(c.API.Server, "http", "https") {
		add("api.api_server", c.API.Server, ErrInvalidURL)
	}
	if c.API.WebServer != "" && !validURL(c.API.WebServer, "http", "https") {
		add("api.web_server", c.API.WebServer, ErrInvalidURL)
	}
	// The files server may be an object store (s3://, gs://, azure://).
	if c.API.FilesServer != "" && !validURL(c.API.FilesServer) {
		add("api.files_server", c.API.FilesServer, ErrInvalidURL)
	}

	switch c.API.DefaultMethod {
	case "GET", "POST", "PUT":
	default:
		add("api.http.default_method", c.API.DefaultMethod, ErrInvalidMethod)
	}

	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"api.auth.token_expiration_threshold_sec", c.API.TokenExpirationThreshold},
		{"agent.task_ping_interval_sec", c.Agent.TaskPingInterval},
		{"agent.polling_interval_sec", c.Agent.PollInterval},
		{"agent.status_report_interval_sec", c.Agent.StatusReportInterval},
		{"agent.abort_grace_period_sec", c.Agent.AbortGracePeriod},
	} {
		if d.value < 0 {
			add(d.field, fmt.Sprint(d.value.Seconds()), ErrNegative)
		}
	}
	if c.API.RequestTokenExpirationSec < 0 {
		add("api.auth.request_token_expiration_sec", fmt.Sprint(c.API.RequestTokenExpirationSec), ErrNegative)
	}
	return errors.Join(errs...)
}

// validURL reports whether s is an absolute URL with a host and, when
// schemes are given, one of them.
func validURL(s string, schemes ...string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return false
	}
	if len(schemes) == 0 {
		return true
	}
	for _, sc := range schemes {
		if u.Scheme == sc {
			return true
		}
	}
	return false
}
