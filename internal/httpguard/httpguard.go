// Package httpguard protects an HTTP server from clients it cannot trust:
// requests that a web page on another origin makes a browser send
// (CrossSite), request bodies that arrive too slowly (MinRate), and too
// many connections from one address (LimitPerClient).
package httpguard

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// simpleTypes are the content types a browser sends across origins
// without asking the server first (a CORS "simple" request).
var simpleTypes = map[string]bool{"": true, "text/plain": true, "application/x-www-form-urlencoded": true, "multipart/form-data": true}

// CrossSite says why r is a request that a page on another origin made a
// browser send without a CORS preflight, which the server must not serve
// (the browser attaches the user's cookies, and the page needs no answer
// to do harm); it returns "" for any other request. Such a request is:
//
//   - one with an Origin header naming another origin (or "null") and a
//     method and content type that need no preflight: a fetch with
//     text/plain, a form post;
//   - one the browser marks (Sec-Fetch-Site) as coming from another site
//     or origin and (Sec-Fetch-Mode) as not a CORS request: an img or
//     script tag, a link followed, a form submitted.
//
// Clients that are not browsers (the SDK, the agents, curl) send neither
// header. Preflighted requests (application/json from another origin) go
// through: the preflight answer decides, and browsers send no cookie with
// them to a server that allows any origin.
func CrossSite(r *http.Request) string {
	if origin := r.Header.Get("Origin"); origin != "" && !sameOrigin(origin, r) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
			if simpleTypes[strings.ToLower(mt)] {
				return "a request from " + origin + " without a CORS preflight"
			}
		}
	}
	switch site := strings.ToLower(r.Header.Get("Sec-Fetch-Site")); site {
	case "cross-site", "same-site":
		if mode := strings.ToLower(r.Header.Get("Sec-Fetch-Mode")); mode != "cors" && mode != "" {
			return "a " + mode + " request from another site"
		}
	}
	return ""
}

// sameOrigin reports whether origin names the host the request was sent
// to (its Host header).
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null", or not an origin
	}
	host := u.Host
	if u.Port() == "" {
		switch u.Scheme {
		case "http":
			host += ":80"
		case "https":
			host += ":443"
		}
	}
	reqHost := r.Host
	if !strings.Contains(strings.TrimPrefix(reqHost, "["), "]:") && strings.Count(reqHost, ":") == 0 {
		if r.TLS != nil {
			reqHost += ":443"
		} else {
			reqHost += ":80"
		}
	}
	return strings.EqualFold(host, reqHost)
}

// ErrTooSlow is the error of a request body read that fell below the
// minimum rate.
var ErrTooSlow = errors.New("request body arrives too slowly")

// MinRate makes r's body arrive at rate bytes per second or more, on
// average over the time the server spends waiting for it, once grace of
// such waiting has passed (so a client may pause while it starts); the
// read that falls behind fails with ErrTooSlow. Time the server spends
// elsewhere (decoding, storing) does not count against the client. It
// works with read deadlines on the connection (no goroutine), so a
// stalled client costs the server nothing once the deadline passes. A
// ResponseWriter without deadlines (a test recorder) gets no limit.
// rate <= 0 turns the limit off.
func MinRate(w http.ResponseWriter, r *http.Request, rate int64, grace time.Duration) {
	if rate <= 0 || r.Body == nil || r.Body == http.NoBody {
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return // not supported
	}
	r.Body = &rateReader{body: r.Body, rc: rc, rate: rate, grace: grace}
}

type rateReader struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	rate    int64
	grace   time.Duration
	n       int64         // bytes read
	waited  time.Duration // time spent in Read
	done    bool
	timeout bool
}

func (rr *rateReader) Read(p []byte) (int, error) {
	if rr.done {
		return rr.body.Read(p)
	}
	if rr.timeout {
		return 0, ErrTooSlow
	}
	// The next byte must come before the average over the waiting time
	// falls below the rate.
	allowed := rr.grace + time.Duration(float64(rr.n+1)/float64(rr.rate)*float64(time.Second)) - rr.waited
	start := time.Now()
	rr.rc.SetReadDeadline(start.Add(max(allowed, time.Millisecond)))
	n, err := rr.body.Read(p)
	rr.waited += time.Since(start)
	rr.n += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		rr.timeout = true
		return n, ErrTooSlow
	case err != nil:
		rr.done = true
		rr.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (rr *rateReader) Close() error { return rr.body.Close() }
