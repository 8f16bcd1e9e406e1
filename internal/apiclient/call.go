package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// Policy is the retry budget of one call. Transient failures (IsRetryable)
// are retried with exponential backoff and full jitter until an attempt
// succeeds, MaxAttempts attempts were made, the next wait would pass
// MaxElapsed, or ctx ends. Other errors are returned at once.
//
// Retrying re-sends the request, so a call whose request reached the server
// but whose answer was lost runs twice. That is what the upstream clients
// do too; for a create, pass Once if a duplicate matters more than a
// failure.
type Policy struct {
	MaxAttempts    int           // 0 = unlimited (bounded by MaxElapsed and ctx)
	MaxElapsed     time.Duration // 0 = unlimited
	InitialBackoff time.Duration // 0 = 500 ms
	MaxBackoff     time.Duration // 0 = 30 s
}

// The budgets the agent uses.
var (
	// Poll is for queue polls and abort checks, which run again soon anyway.
	Poll = Policy{MaxAttempts: 2, MaxElapsed: 5 * time.Second, InitialBackoff: 500 * time.Millisecond, MaxBackoff: 2 * time.Second}
	// Default is for ordinary calls.
	Default = Policy{MaxAttempts: 6, MaxElapsed: 2 * time.Minute, InitialBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second}
	// Final is for what must not be lost: final status reports, unregister,
	// log delivery. Bound it further with ctx.
	Final = Policy{MaxElapsed: 30 * time.Minute, InitialBackoff: time.Second, MaxBackoff: 30 * time.Second}
	// Once makes a single attempt.
	Once = Policy{MaxAttempts: 1}
)

func (p Policy) withDefaults() Policy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 500 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	return p
}

// backoff returns the wait after the given failed attempt (1-based): a
// random duration up to InitialBackoff*2^(attempt-1), capped at MaxBackoff
// ("full jitter"), but at least the server's Retry-After (within MaxBackoff).
func (p Policy) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := p.MaxBackoff
	if shift := attempt - 1; shift < 30 {
		ceiling = min(ceiling, p.InitialBackoff<<shift)
	}
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return max(d, min(retryAfter, p.MaxBackoff))
}

// request is one prepared API request.
type request struct {
	method, endpoint, path, contentType string
	body                                []byte        // nil: no body
	wait                                time.Duration // added to the attempt timeout (long polls)
}

// Call sends one request. endpoint is "service.action"; version is "" for
// the unversioned path (the server's newest version) or e.g. "2.5" for
// /v2.5/service.action. req is marshalled as the JSON body (nil: no body;
// a json.RawMessage is sent as is); the response data is unmarshalled into
// resp when resp is non-nil. The request is a GET with a JSON body, like the
// upstream clients send.
//
// Errors: *api.Error for an API error (returned at once unless retryable),
// *UnreachableError when the retry budget ran out, ctx's error when it
// ended. A 401 triggers one re-login and one retry.
func (c *Client) Call(ctx context.Context, version, endpoint string, req, resp any, p Policy) error {
	r, err := c.newRequest(version, endpoint, req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", endpoint, err)
	}
	return c.do(ctx, r, resp, p)
}

func (c *Client) newRequest(version, endpoint string, body any) (request, error) {
	if i := strings.IndexByte(endpoint, '.'); i <= 0 || i == len(endpoint)-1 || strings.ContainsAny(endpoint, "/?# ") {
		return request{}, fmt.Errorf("invalid endpoint name %q (want service.action)", endpoint)
	}
	r := request{method: http.MethodGet, endpoint: endpoint, path: "/" + endpoint, contentType: "application/json"}
	if version != "" {
		if _, _, ok := api.ParseVersion(version); !ok {
			return request{}, fmt.Errorf("invalid API version %q (want e.g. 2.5)", version)
		}
		r.path = "/v" + version + r.path
	}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return request{}, fmt.Errorf("encoding request: %w", err)
		}
		r.body = b
	}
	return r, nil
}

// do runs r under p and decodes the data into out.
func (c *Client) do(ctx context.Context, r request, out any, p Policy) error {
	reauthed := false
	err := c.retry(ctx, r.endpoint, p, func(ctx context.Context) error {
		return c.attempt(ctx, r, out, &reauthed)
	})
	if err != nil {
		return fmt.Errorf("calling %s: %w", r.endpoint, err)
	}
	return nil
}

// retry runs fn until it succeeds, fails for good, or p runs out.
func (c *Client) retry(ctx context.Context, endpoint string, p Policy, fn func(ctx context.Context) error) error {
	p = p.withDefaults()
	start := c.now()
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if attempt > 1 && endpoint == "tasks.enqueue" && api.ErrTaskAlreadyQueued.Is(err) {
			// The first attempt queued the task and its answer was lost
			// (a proxy or server died after the commit): done.
			c.log.Debug("task already queued by an earlier attempt", "endpoint", endpoint, "attempt", attempt)
			return nil
		}
		if ctx.Err() != nil || !IsRetryable(err) {
			return err
		}
		var hint time.Duration
		var ra *retryAfterError
		if errors.As(err, &ra) {
			hint = ra.after
		}
		delay := p.backoff(attempt, hint)
		elapsed := c.now().Sub(start)
		if (p.MaxAttempts > 0 && attempt >= p.MaxAttempts) || (p.MaxElapsed > 0 && elapsed+delay > p.MaxElapsed) {
			return &UnreachableError{Server: c.base, Endpoint: endpoint, Attempts: attempt, Elapsed: elapsed, Err: err}
		}
		// Retries are the caller's business: the error that survives them
		// is returned, and the caller says it (once).
		c.log.Debug("API call failed, retrying", "endpoint", endpoint, "attempt", attempt, "delay", delay, "err", err)
		if serr := c.sleep(ctx, delay); serr != nil {
			return fmt.Errorf("%w (after %d attempt(s); last error: %v)", serr, attempt, err)
		}
	}
}

// attempt sends r once, with one re-login and re-send on a 401.
func (c *Client) attempt(ctx context.Context, r request, out any, reauthed *bool) error {
	tok, err := c.currentToken(ctx)
	if err != nil {
		return err
	}
	data, err := c.send(ctx, r, tok)
	if IsUnauthorized(err) && !*reauthed && ctx.Err() == nil {
		c.log.Debug("token refused, logging in again", "endpoint", r.endpoint, "err", err)
		if lerr := c.relogin(ctx, tok, false); lerr != nil {
			return lerr
		}
		*reauthed = true
		data, err = c.send(ctx, r, c.Token())
	}
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding response data: %w", err)
		}
	}
	return nil
}

// send makes one HTTP request and returns the envelope's data.
func (c *Client) send(ctx context.Context, r request, tok string) (json.RawMessage, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout+r.wait)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	c.setHeaders(req.Header, "Bearer "+tok)
	if r.endpoint == "tasks.enqueue" {
		// net/http silently re-sends a GET whose reused connection broke;
		// an enqueue is re-sent by retry instead, which counts attempts
		// and knows that "already in queue" then means done.
		req.GetBody = nil
	}
	if r.body != nil {
		req.Header.Set("Content-Type", r.contentType)
	}
	status, respBody, hdr, err := c.roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	data, err := decodeEnvelope(status, respBody)
	if err != nil && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		if d := parseRetryAfter(hdr.Get("Retry-After")); d > 0 {
			err = &retryAfterError{err: err, after: d}
		}
	}
	return data, err
}

// roundTrip sends req and reads the whole answer. ctx is the caller's
// context: failures while it is alive are transport errors (retryable),
// failures after it ended are its own.
func (c *Client) roundTrip(ctx context.Context, req *http.Request) (int, []byte, http.Header, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, err
		}
		return 0, nil, nil, &transportError{err}
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, nil, err
		}
		return 0, nil, nil, &transportError{fmt.Errorf("reading response (HTTP %d): %w", resp.StatusCode, err)}
	}
	return resp.StatusCode, body, resp.Header, nil
}

// decodeEnvelope checks the envelope and returns its data, or the error it
// carries as *api.Error.
func decodeEnvelope(status int, body []byte) (json.RawMessage, error) {
	var env api.Envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Meta.ResultCode == 0 {
		return nil, &HTTPError{StatusCode: status, Excerpt: excerpt(body), Reason: "response is not a ClearML API envelope"}
	}
	if env.Meta.ResultCode != status {
		return nil, &HTTPError{StatusCode: status, Excerpt: excerpt(body),
			Reason: fmt.Sprintf("result_code %d disagrees with the HTTP status", env.Meta.ResultCode)}
	}
	if status != http.StatusOK {
		msg := env.Meta.ResultMsg
		if msg == "" {
			msg = http.StatusText(status)
		}
		return nil, &api.Error{Code: env.Meta.ResultCode, Subcode: env.Meta.ResultSubcode, Msg: msg, Data: env.Meta.ErrorData}
	}
	return env.Data, nil
}

// retryAfterError carries a server's Retry-After hint with the error.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// parseRetryAfter reads a Retry-After header in seconds (the date form is
// ignored).
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// maxBatchBytes is where AddEvents cuts a batch into several requests: the
// upstream clients' api.http.max_req_size, below the servers' body limit.
const maxBatchBytes = 15 << 20

// AddEvents posts events as JSON lines (one JSON object per line) to the
// unversioned events.add_batch, by POST with Content-Type
// application/json-lines, and returns the server's added and errors counts.
// A batch larger than 15 MiB is sent as several requests, and the counts
// are summed. When the server accepted none of a request's events it
// answers 400/131; that request's events then count as errors and the
// *api.Error is returned with the counts so far.
func (c *Client) AddEvents(ctx context.Context, lines [][]byte, p Policy) (added, errs int, err error) {
	var chunk bytes.Buffer
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var resp api.AddBatchResponse
		r := request{method: http.MethodPost, endpoint: "events.add_batch", path: "/events.add_batch",
			contentType: "application/json-lines", body: bytes.Clone(chunk.Bytes())}
		err := c.do(ctx, r, &resp, p)
		if err != nil {
			if api.ErrEventsNotAdded.Is(err) {
				errs += rejected(err, n)
			}
			return err
		}
		added, errs = added+resp.Added, errs+resp.Errors
		chunk.Reset()
		n = 0
		return nil
	}
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if bytes.IndexByte(line, '\n') >= 0 {
			return added, errs, fmt.Errorf("calling events.add_batch: event %d spans several lines", i)
		}
		if n > 0 && chunk.Len()+1+len(line) > maxBatchBytes {
			if err := flush(); err != nil {
				return added, errs, err
			}
		}
		if n > 0 {
			chunk.WriteByte('\n')
		}
		chunk.Write(line)
		n++
	}
	return added, errs, flush()
}

// rejected counts the events of a refused batch from the error's per-reason
// counts, or n when they are missing.
func rejected(err error, n int) int {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return n
	}
	total := 0
	for _, v := range ae.Data {
		if f, ok := v.(float64); ok {
			total += int(f)
		}
	}
	if total == 0 {
		return n
	}
	return total
}
