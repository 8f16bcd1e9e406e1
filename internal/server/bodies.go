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
)

// Request bodies and memory.
//
// A request's memory is a small multiple of its body: the body itself (or,
// for events.add_batch, which is decoded line by line as it arrives, the
// stored form of its events) and the decoded values. Bodies over
// largeBody therefore pass a gate that admits at most Options.BodyBudget
// bytes of them at once; the others wait their turn (their clients block
// on TCP, sending nothing) for up to Options.BodyWait, then get a 503,
// which the ClearML clients retry. When the last large body is done, the
// freed memory is handed back to the operating system at once instead of
// when the runtime gets round to it.

// largeBody is the size from which a body must pass the gate.
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

// admitBody passes a large body through the gate. It returns the function
// that gives its bytes back (nil when there is nothing to give back).
func (s *Server) admitBody(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	n := r.ContentLength
	if n >= 0 && n < largeBody {
		return nil, nil
	}
	if n < 0 {
		n = s.opts.MaxBodyBytes // unknown length: assume the worst
	}
	got, err := s.bodies.acquire(r.Context(), n, s.opts.BodyWait)
	if err != nil {
		if errors.Is(err, errBusy) {
			// Read the body (into nothing) so that the client, which sends
			// all of it before reading an answer, gets the 503.
			io.Copy(io.Discard, io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
			w.Header().Set("Retry-After", "5")
			return nil, &api.Error{Code: http.StatusServiceUnavailable,
				Msg: "Server busy: too many large requests in progress, retry later", Data: map[string]any{}}
		}
		return nil, err
	}
	return func() {
		if s.bodies.release(got) {
			flushAndFreeMemory(w)
		}
	}, nil
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
		return nil, api.ErrBadRequest.New("reading request body: " + err.Error())
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
			return api.ErrBadRequest.New("reading request body: " + err.Error())
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
