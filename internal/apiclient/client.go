// Package apiclient is the HTTP client the agent uses to talk to a ClearML
// API server: the embedded one in internal/server or the reference server.
//
// It speaks the wire format of internal/api the way the upstream clients do:
// GET requests with a JSON body to {server}[/vX.Y]/service.action, a Bearer
// token obtained from an unversioned auth.login with Basic credentials, the
// X-ClearML-Worker / X-ClearML-Agent headers (and their X-Trains aliases),
// and the {meta, data} response envelope.
//
// Layers. Call sends one request under a retry budget (Policy) chosen by the
// caller: queue polls give up fast, ordinary calls retry for a while, and
// final status reports and log delivery keep trying. The typed methods
// (GetNextTask, SetStatus, StatusReport, ...) are thin wrappers over Call
// with the API versions the upstream agent uses. Loops (polling, heartbeats)
// belong to the agent, not here.
//
// Errors are classified where they enter: API errors come back as
// *api.Error (errors.As), bodies that are not an envelope as *HTTPError,
// and a call that ran out of retries as *UnreachableError (errors.Is
// ErrUnreachable). IsRetryable, IsUnauthorized and IsNotFound answer the
// questions callers branch on.
//
// Concurrency: a Client is safe for use by several goroutines. Logins are
// single-flight: while one goroutine logs in, the others wait for it and
// reuse the new token.
//
// Secrets (the secret key, tokens, the Authorization header) are never
// logged and never put into error messages.
package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Config configures a Client. Only Server and credentials are required.
type Config struct {
	// Server is the API server's base URL, e.g. http://127.0.0.1:8008. A
	// trailing / is stripped; a path prefix (behind a proxy) is kept.
	Server string
	// AccessKey and SecretKey are the API credentials, sent as HTTP Basic
	// auth to auth.login only.
	AccessKey, SecretKey string
	// Token is a ready JWT (CLEARML_AUTH_TOKEN). When set it is used instead
	// of the key and secret: calls carry it at once, and a refresh presents
	// it as Bearer to auth.login. If that is refused and a key pair is also
	// configured, the key pair is tried.
	Token string
	// WorkerName is sent as X-ClearML-Worker and X-Trains-Worker: the host
	// name, not the worker id. Empty: os.Hostname().
	WorkerName string
	// UserAgent is sent as X-ClearML-Agent and X-Trains-Agent, e.g. "api-0.1.0".
	UserAgent string
	// HTTPClient sends the requests. Nil: a client whose transport connects
	// within 10 s and that has no overall timeout (long polls); the response
	// timeout is applied per attempt by this package (RequestTimeout).
	HTTPClient *http.Client
	// RequestTimeout bounds one attempt (response headers and body).
	// Zero: 30 s. A long poll (GetNextTask with a wait) gets the wait on top.
	RequestTimeout time.Duration
	// Logger receives retry and login messages. Nil: discard.
	Logger *slog.Logger
	// RefreshThreshold: log in again before a call when the token has less
	// than this left. Zero: 12 h, as upstream. A token that lives shorter
	// than the threshold is refreshed when half of its lifetime is left
	// instead (a deviation: upstream would log in before every call).
	RefreshThreshold time.Duration
	// Sleep waits between retries; tests inject it. Nil: a real sleep that
	// returns ctx's error when ctx ends first.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for token expiry and retry budgets; tests inject it
	// together with Sleep. Nil: time.Now.
	Now func() time.Time
}

// Client talks to one API server. Create it with New.
type Client struct {
	base    string // server URL without trailing /
	cfg     Config
	http    *http.Client
	log     *slog.Logger
	sleep   func(ctx context.Context, d time.Duration) error
	now     func() time.Time
	timeout time.Duration
	worker  string

	mu        sync.Mutex // guards the fields below
	token     string
	claims    Claims
	refreshAt time.Time    // local time at which to log in again; zero: never
	expiresAt time.Time    // local time at which the token stops working; zero: unknown
	flight    *loginFlight // the login in progress, if any
}

// New validates cfg and returns a client. It does no network I/O; the first
// call (or Login) logs in.
func New(cfg Config) (*Client, error) {
	base, err := parseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" && (cfg.AccessKey == "" || cfg.SecretKey == "") {
		return nil, errors.New("apiclient: missing credentials: set both an access key and a secret key, or a token")
	}
	c := &Client{base: base, cfg: cfg, http: cfg.HTTPClient, log: cfg.Logger, sleep: cfg.Sleep, now: cfg.Now,
		timeout: cfg.RequestTimeout, worker: cfg.WorkerName}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.cfg.RefreshThreshold <= 0 {
		c.cfg.RefreshThreshold = 12 * time.Hour
	}
	if c.worker == "" {
		c.worker, _ = os.Hostname()
	}
	if cfg.Token != "" {
		// A ready token is usable at once; decode what it says so that
		// Claims and refresh timing work before the first login.
		claims, iat, err := decodeToken(cfg.Token)
		if err != nil {
			return nil, fmt.Errorf("apiclient: reading the configured token: %w", err)
		}
		c.setTokenLocked(cfg.Token, claims, iat, false)
	}
	return c, nil
}

// parseServer checks the base URL and returns it without a trailing /.
func parseServer(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("apiclient: no API server configured (set api.api_server or CLEARML_API_HOST)")
	}
	if !strings.Contains(s, "://") {
		return "", fmt.Errorf("apiclient: invalid API server URL %q: scheme must be http or https (e.g. http://%s)", raw, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("apiclient: invalid API server URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("apiclient: invalid API server URL %q: scheme must be http or https", raw)
	case u.Host == "":
		return "", fmt.Errorf("apiclient: invalid API server URL %q: no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("apiclient: invalid API server URL %s: credentials belong in the access and secret keys, not the URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("apiclient: invalid API server URL %q: no query or fragment allowed", raw)
	}
	return strings.TrimRight(s, "/"), nil
}

// defaultHTTPClient has connect and TLS timeouts but no overall timeout:
// the per-attempt timeout is set by the caller's context, which lets long
// polls wait longer than ordinary calls.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: t}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Server returns the base URL the client talks to.
func (c *Client) Server() string { return c.base }

// Token returns the current token ("" before the first login).
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// setHeaders adds the headers every request carries. auth is the full
// Authorization value.
func (c *Client) setHeaders(h http.Header, auth string) {
	if auth != "" {
		h.Set("Authorization", auth)
	}
	if c.worker != "" {
		h.Set("X-ClearML-Worker", c.worker)
		h.Set("X-Trains-Worker", c.worker)
	}
	if c.cfg.UserAgent != "" {
		h.Set("X-ClearML-Agent", c.cfg.UserAgent)
		h.Set("X-Trains-Agent", c.cfg.UserAgent)
	}
	h.Set("Accept", "application/json")
}

// maxResponseBytes bounds what we read from one response.
const maxResponseBytes = 64 << 20

// readBody reads a response body up to maxResponseBytes.
func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponseBytes)
	}
	return b, nil
}

// CloseIdleConnections closes the connections kept for later calls (a
// process that makes no more calls for long).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
