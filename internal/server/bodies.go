package server

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/httpguard"
)

// Request bodies and memory.
//
// A request's memory is a small multiple of its body: the body itself (or,
// for events.add_batch, which is decoded line by line as it arrives, the
// stored form of its events) and the decoded values, which measureJSON
// bounds (shape.go). Bodies of gateMin bytes or more pass a gate that
// admits at most Options.BodyBudget bytes of that memory at once, counted
// after the caller signed in; the others wait their turn (their clients
// block on TCP, sending nothing) for up to Options.BodyWait, then get a
// 503, which the ClearML clients retry. A body must also keep up a
// minimum rate (httpguard.MinRate), so a slow client cannot hold its share
// for long. When the last large body is done, the freed memory is handed
// back to the operating system at once instead of when the runtime gets
// round to it.

// gateMin is the size from which a body must pass the gate; smaller ones
// cost at most densityFactor*gateMin+decodeSlack each.
const gateMin = 64 << 10

// largeBody is the answer size from which its memory is handed back.
const largeBody = 1 << 20

// bodyGate is a weighted FIFO semaphore over body bytes.
type bodyGate struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	waiters list.List // of *gateWaiter, in arrival order
}

type gateWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

// errBusy says the gate did not admit a body in time.
var errBusy = errors.New("too many large requests in progress")

// acquire takes n bytes of the budget (all of it at most), waiting up to
// wait. It returns errBusy when the wait ran out and ctx's error when ctx
// ended first.
func (g *bodyGate) acquire(ctx context.Context, n int64, wait time.Duration) (int64, error) {
	n = min(n, g.budget)
	g.mu.Lock()
	if g.used+n <= g.budget && g.waiters.Len() == 0 {
		g.used += n
		g.mu.Unlock()
		return n, nil
	}
	w := &gateWaiter{n: n, ready: make(chan struct{})}
	elem := g.waiters.PushBack(w)
	g.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errBusy
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-w.ready: // granted while giving up: take it after all
		return n, nil
	default:
	}
	g.waiters.Remove(elem)
	g.grantLocked() // the next ones may fit now that this one left the line
	return 0, err
}

// release returns n bytes and reports whether no large body is left in
// flight or waiting.
func (g *bodyGate) release(n int64) (idle bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.used -= n
	g.grantLocked()
	return g.used == 0 && g.waiters.Len() == 0
}

// idle reports whether no large body is in flight or waiting.
func (g *bodyGate) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used == 0 && g.waiters.Len() == 0
}

// grantLocked admits waiters in order while they fit.
func (g *bodyGate) grantLocked() {
	for e := g.waiters.Front(); e != nil; e = g.waiters.Front() {
		w := e.Value.(*gateWaiter)
		if g.used+w.n > g.budget {
			return
		}
		g.used += w.n
		g.waiters.Remove(e)
		close(w.ready)
	}
}

// reservation is a request's share of the body budget.
type reservation struct {
	s   *Server
	w   http.ResponseWriter
	got int64
}

// release gives the share back, after the answer (nil-safe).
func (r *reservation) release() {
	if r == nil || r.got == 0 {
		return
	}
	if r.s.bodies.release(r.got) {
		flushAndFreeMemory(r.w)
	}
	r.got = 0
}

// shrink gives back what the request turned out not to need beyond keep.
func (r *reservation) shrink(keep int64) {
	if r == nil || keep >= r.got {
		return
	}
	r.s.bodies.release(r.got - keep)
	r.got = keep
}

// admitBody passes a body of gateMin bytes or more through the gate,
// reserving the memory it may take: the body and its decoded values, or
// for a batch (decoded as it arrives) the body, its stored events and one
// line's decoding. Smaller bodies pass at once (nil reservation).
func (s *Server) admitBody(w http.ResponseWriter, r *http.Request, batch bool) (*reservation, error) {
	n := r.ContentLength
	if n == 0 || (n > 0 && n < gateMin) {
		return nil, nil
	}
	if n < 0 {
		n = s.opts.MaxBodyBytes // unknown length: assume the worst
	}
	need := n + densityFactor*n + decodeSlack
	if batch {
		need = 2*n + decodeSlack
	}
	got, err := s.bodies.acquire(r.Context(), need, s.opts.BodyWait)
	if err != nil {
		if errors.Is(err, errBusy) {
			// Read the body (into nothing) so that the client, which sends
			// all of it before reading an answer, gets the 503.
			discardBody(r, s.opts.MaxBodyBytes)
			w.Header().Set("Retry-After", "5")
			return nil, &api.Error{Code: http.StatusServiceUnavailable,
				Msg: "Server busy: too many large requests in progress, retry later", Data: map[string]any{}}
		}
		return nil, err
	}
	return &reservation{s: s, w: w, got: got}, nil
}

// discardBody reads what is left of a refused request's body (at most
// limit bytes, at the minimum rate) into nothing, so that the client,
// which sends its body before it reads the answer, gets the answer. It
// costs no memory.
func discardBody(r *http.Request, limit int64) {
	io.Copy(io.Discard, io.LimitReader(r.Body, limit+1))
}

// bodyReadError is the error of a failed body read: 408 when the client
// sent it too slowly (the connection is then closed), else 400.
func bodyReadError(err error) error {
	if errors.Is(err, httpguard.ErrTooSlow) {
		return &api.Error{Code: http.StatusRequestTimeout, Msg: "Request timeout: the request body arrived too slowly", Data: map[string]any{}}
	}
	return api.ErrBadRequest.New("reading request body: " + err.Error())
}

// flushAndFreeMemory sends the answer, then hands the memory the runtime
// holds but does not use back to the operating system (a garbage
// collection; the cost of a large request is far higher).
func flushAndFreeMemory(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	debug.FreeOSMemory()
}

// readBody reads a whole request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + 1) // one allocation of the right size
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, bodyReadError(err)
	}
	if n > limit {
		return nil, api.ErrTooLarge.New(fmt.Sprintf("body exceeds %d bytes", limit))
	}
	return buf.Bytes(), nil
}

// eachLine calls fn for every non-blank line of a body of at most limit
// bytes, trimmed, without keeping more than one line in memory. n counts
// lines from 1. It stops at fn's first error. A body over the limit is a
// 413, whatever fn did with the lines before.
func eachLine(body io.Reader, limit int64, fn func(n int, line []byte) error) error {
	lr := &io.LimitedReader{R: body, N: limit + 1}
	br := bufio.NewReaderSize(lr, 64<<10)
	var long []byte // a line longer than the reader's buffer
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if lr.N <= 0 {
			return api.ErrTooLarge.New(fmt.Sprintf("body exceeds %d bytes", limit))
		}
		if err != nil && err != io.EOF {
			return bodyReadError(err)
		}
		if t := replaceNULEscapes(bytes.TrimSpace(line)); len(t) > 0 {
			if err := fn(n, t); err != nil {
				// Read the rest (into nothing, up to the limit), so that the
				// client, which sends its body before reading an answer,
				// gets this one.
				io.Copy(io.Discard, lr)
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}
