// Package server implements the ClearML REST API (the subset that the
// ClearML SDK, the upstream clearml-agent and our own agent use) over a
// store.Store. It routes on the path only, accepts every HTTP method, reads
// JSON bodies on GET, and answers every call, success or error, with the
// reference server's {meta, data} envelope.
package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/httpguard"
	"github.com/goclearml/agent/internal/store"
)

// Options configure a Server. Zero values take the reference defaults.
type Options struct {
	// TokenTTL is the default token lifetime (30 days).
	TokenTTL time.Duration
	// MaxTokenTTL caps a requested lifetime (1 year).
	MaxTokenTTL time.Duration
	// WorkerTimeout is how long a worker entry lives after its last report
	// when it registered without a timeout (600 s).
	WorkerTimeout time.Duration
	// TaskUpdateTimeout decides whether a task is run by a live worker when
	// it is stopped (600 s).
	TaskUpdateTimeout time.Duration
	// MaxBodyBytes limits request bodies (32 MiB).
	MaxBodyBytes int64
	// BodyBudget bounds the bytes of large request bodies (1 MiB and
	// more) served at once (64 MiB); the others wait (see bodies.go).
	BodyBudget int64
	// BodyWait is how long a large body waits for the budget before the
	// request is answered 503 (30 s).
	BodyWait time.Duration
	// BodyMinRate is the slowest a request body may arrive, in bytes per
	// second on average after BodyRateGrace (16 KiB/s and 10 s); a slower
	// one is answered 408 and its connection closed.
	BodyMinRate   int64
	BodyRateGrace time.Duration
	// RevocationRefresh is how often the list of sessions ended by
	// auth.logout is read again (1 s): a logout through another replica
	// takes effect here within this time; through this one, at once.
	RevocationRefresh time.Duration
	// LeaseTimeout is how long a task handed out by queues.get_next_task
	// waits for the worker's tasks.started before it goes back to its
	// queue (30 s; see leases.go).
	LeaseTimeout time.Duration
	// HiddenQueueTags hide queues from unfiltered listings (["k8s-glue"]).
	HiddenQueueTags []string
	// Now is the clock; tests inject one.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.TokenTTL == 0 {
		o.TokenTTL = 30 * 24 * time.Hour
	}
	if o.MaxTokenTTL == 0 {
		o.MaxTokenTTL = 365 * 24 * time.Hour
	}
	if o.WorkerTimeout == 0 {
		o.WorkerTimeout = 600 * time.Second
	}
	if o.TaskUpdateTimeout == 0 {
		o.TaskUpdateTimeout = 600 * time.Second
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.BodyBudget == 0 {
		o.BodyBudget = 64 << 20
	}
	if o.BodyWait == 0 {
		o.BodyWait = 30 * time.Second
	}
	if o.BodyMinRate == 0 {
		o.BodyMinRate = 16 << 10
	}
	if o.BodyRateGrace == 0 {
		o.BodyRateGrace = 10 * time.Second
	}
	if o.RevocationRefresh == 0 {
		o.RevocationRefresh = time.Second
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = 30 * time.Second
	}
	if o.HiddenQueueTags == nil {
		o.HiddenQueueTags = []string{"k8s-glue"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server serves the API. Create it with New.
type Server struct {
	store  store.Store
	log    *slog.Logger
	opts   Options
	routes map[string]route
	tokens *tokenSigner
	waker  *queueWaker
	// busyQueues are the queues whose last pop here found a task.
	busyQueues queueSet
	uid        string

	identMu sync.Mutex
	idents  map[string]identEntry // verified tokens, to skip re-parsing
	revoked revocations
	bodies  *bodyGate
	// noFastList turns the paged task listing off (tests compare it with
	// the generic path).
	noFastList bool
	// draining is closed when the server begins to shut down: /healthz
	// answers 503 and long polls answer at once.
	draining  chan struct{}
	drainOnce sync.Once
}

// Drain begins the shutdown: the health check fails, so a load balancer
// sends new requests elsewhere, and waiting long polls answer now (empty)
// instead of holding the shutdown for their whole wait.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}

type handlerFunc func(s *Server, c *call) (any, error)

type route struct {
	fn       handlerFunc
	minMajor int
	minMinor int
	noAuth   bool
	batch    bool
}

// New returns a server over st. The store must have been bootstrapped
// (Bootstrap), which creates the token secret.
func New(st store.Store, log *slog.Logger, opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{store: st, log: log, opts: opts, idents: map[string]identEntry{}, waker: newQueueWaker(),
		draining: make(chan struct{}),
		bodies:   &bodyGate{budget: opts.BodyBudget}}
	secret, err := loadTokenSecret(st)
	if err != nil {
		return nil, err
	}
	s.tokens = &tokenSigner{secret: secret}
	s.uid = newID()
	s.routes = routes()
	return s, nil
}

// newID returns a fresh object id: 32 lowercase hex characters.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func (s *Server) now() api.Time { return api.Time{Time: s.opts.Now().UTC().Truncate(time.Millisecond)} }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "*")
		w.WriteHeader(http.StatusOK)
		return
	}
	c := &call{ctx: r.Context(), header: r.Header, respHeader: w.Header()}
	if why := httpguard.CrossSite(r); why != "" {
		// Sent by a web page on another origin, maybe with the user's
		// cookie: refused before anything is read.
		w.Header().Set("Connection", "close")
		s.writeResponse(w, r, c, nil, &api.Error{Code: http.StatusForbidden,
			Msg: "Forbidden: " + why + " (a browser must ask with a CORS preflight, as for application/json)", Data: map[string]any{}})
		return
	}
	var data any
	var err error
	defer func() {
		if c.release != nil {
			c.release() // after the answer: the request's memory is free now
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving request", "endpoint", c.endpoint, "panic", p)
			s.writeResponse(w, r, c, nil, api.ErrGeneral.New("internal error"))
		}
	}()
	data, err = s.serve(w, r, c)
	if errors.Is(err, errResponseWritten) {
		return
	}
	if n := s.writeResponse(w, r, c, data, err); n >= largeBody && c.release == nil && s.bodies.idle() {
		// A large answer leaves its encoding's memory behind, as a large
		// body does (see bodies.go).
		flushAndFreeMemory(w)
	}
}

// errResponseWritten tells ServeHTTP that the handler answered itself.
var errResponseWritten = errors.New("response written")

func (s *Server) serve(w http.ResponseWriter, r *http.Request, c *call) (any, error) {
	name, version, perr := parsePath(r.URL.Path)
	if perr != nil {
		return nil, perr
	}
	c.endpoint, c.version = name, version
	c.major, c.minor, _ = api.ParseVersion(version)
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		io.WriteString(w, "Content encoding is not supported\n")
		return nil, errResponseWritten
	}
	rt, ok := s.routes[name]
	if !ok || c.below(rt.minMajor, rt.minMinor) {
		return nil, &api.Error{Code: 404, Msg: fmt.Sprintf("Unable to find endpoint for name %s and version %s", name, version), Data: map[string]any{}}
	}
	// Every read of the body from here on must keep up a minimum rate.
	httpguard.MinRate(w, r, s.opts.BodyMinRate, s.opts.BodyRateGrace)
	c.worker = firstHeader(r, "X-ClearML-Worker", "X-Trains-Worker")
	c.realIP = realIP(r)
	// Credentials first: a caller who is not signed in makes the server
	// read nothing into memory and take none of the body budget.
	ident, claims, err := s.authenticate(c.ctx, r)
	switch {
	case err != nil && rt.noAuth:
		// Served without its body or query (debug.ping).
		discardBody(r, s.opts.MaxBodyBytes)
		return rt.fn(s, c)
	case err != nil:
		discardBody(r, s.opts.MaxBodyBytes)
		return nil, err
	}
	c.ident, c.claims = ident, claims
	if err := checkRole(ident, name); err != nil {
		discardBody(r, s.opts.MaxBodyBytes)
		return nil, err
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		discardBody(r, s.opts.MaxBodyBytes)
		return nil, api.ErrTooLarge.New(fmt.Sprintf("body exceeds %d bytes", s.opts.MaxBodyBytes))
	}
	res, err := s.admitBody(w, r, rt.batch)
	if err != nil {
		return nil, err
	}
	c.release = res.release
	if rt.batch {
		// Decoded line by line as it arrives, by the handler.
		c.stream = r.Body
		return rt.fn(s, c)
	}
	body, err := readBody(r, s.opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if perr := parseBody(c, body, r.URL.Query()); perr != nil {
		return nil, perr
	}
	// What the body turned out to need; the rest of the reservation goes
	// back at once.
	res.shrink(int64(len(body)) + c.decodeCost)
	return rt.fn(s, c)
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}

func realIP(r *http.Request) string {
	if v := r.Header.Get("X-Real-IP"); v != "" {
		return v
	}
	if v := r.Header.Get("X-Forwarded-For"); v != "" {
		return strings.TrimSpace(strings.Split(v, ",")[0])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var emptyObject = json.RawMessage("{}")

// writeResponse answers with the envelope and returns its size.
func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, c *call, data any, err error) int {
	m := api.Meta{
		ID:        newID(),
		Endpoint:  api.Endpoint{Name: c.endpoint, RequestedVersion: c.version, ActualVersion: "1.0"},
		ErrorData: map[string]any{},
	}
	m.Trx = firstHeader(r, "X-ClearML-Trx", "X-Trains-Trx")
	if m.Trx == "" {
		m.Trx = m.ID
	}
	body := emptyObject
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			if errors.Is(err, store.ErrUnavailable) && c.ctx.Err() == nil {
				// Nothing was done (or a cut COMMIT left it unknown): the
				// client, or the load balancer, tries again, perhaps
				// through another replica.
				s.log.Warn("request failed: database unavailable", "endpoint", c.endpoint, "err", err)
				w.Header().Set("Retry-After", "1")
				ae = &api.Error{Code: http.StatusServiceUnavailable, Msg: "Service unavailable: " + err.Error(), Data: map[string]any{}}
			} else if c.ctx.Err() != nil {
				// The client went away; nobody reads this answer.
				ae = api.ErrGeneral.New("request cancelled")
			} else {
				s.log.Error("request failed", "endpoint", c.endpoint, "err", err)
				ae = api.ErrGeneral.New(err.Error())
			}
		}
		m.ResultCode, m.ResultSubcode, m.ResultMsg = ae.Code, ae.Subcode, ae.Msg
		if ae.Data != nil {
			m.ErrorData = ae.Data
		}
	} else {
		m.ResultCode, m.ResultMsg = 200, "OK"
		if data != nil {
			b, merr := json.Marshal(data)
			if merr != nil {
				s.log.Error("encoding response", "endpoint", c.endpoint, "err", merr)
				m.ResultCode, m.ResultMsg = 500, "General error: encoding response"
			} else if len(b) > 0 && b[0] == '{' {
				body = b
			}
		}
	}
	// The envelope is written around the data as encoded (api.EnvelopeText):
	// for a large listing, encoding an api.Envelope would make a second copy
	// of the answer.
	meta, merr := json.Marshal(m)
	if merr != nil {
		// Only error data can fail to encode; without it nothing can.
		s.log.Error("encoding response", "endpoint", c.endpoint, "err", merr)
		m.ResultCode, m.ResultSubcode, m.ResultMsg, m.ErrorData = 500, 0, "General error: encoding response", map[string]any{}
		body = emptyObject
		meta, _ = json.Marshal(m)
	}
	env := api.EnvelopeText
	n := len(env.Head) + len(meta) + len(env.Mid) + len(body) + len(env.Tail)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Server", "clearml")
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(m.ResultCode)
	// The writes go to the connection's buffer; a small answer leaves in
	// one packet when the handler returns.
	for _, part := range [...][]byte{env.Head, meta, env.Mid, body, env.Tail} {
		if _, err := w.Write(part); err != nil {
			break
		}
	}
	return n
}
