package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/store"
)

// Login sessions.
//
// A key-pair login (Basic) starts a session: a fresh session id and a
// session expiry equal to the token's. auth.login with a token (renewal)
// returns a token of the same session that expires no later than the
// session, so a token on its own lives at most as long as the login it came
// from: a stolen token cannot be renewed forever. A client that holds a key
// pair logs in again with it, which starts a new session.
//
// auth.logout ends the presented token's session, for all the tokens
// renewed from it, as the reference server does (it keeps revoked session
// ids in Redis until they would have expired). Ended sessions are stored in
// the database (revoked_sessions) so that every replica refuses them: each
// server reads the list again every Options.RevocationRefresh (1 s), and at
// once for a logout it served itself.

// sessionKey is the id auth.logout revokes: the session id, or the token's
// own id for a token that names no session.
func (c *tokenClaims) sessionKey() string {
	if c.SessionID != "" {
		return c.SessionID
	}
	return c.Jti
}

// sessionExpiry is when the token's session ends (epoch seconds): the
// session_exp claim, or for a token issued before there was one, its own
// expiry (0: never).
func (c *tokenClaims) sessionExpiry() int64 {
	if c.SessionExp != 0 {
		return c.SessionExp
	}
	return c.Exp
}

// revocations caches the ended sessions of the database.
type revocations struct {
	mu sync.Mutex
	// ids maps an ended session to its expiry (epoch seconds, 0: never).
	ids      map[string]int64
	loadedAt time.Time // wall clock of the last read; zero before the first
	loading  bool      // a request is reading the list
}

// has reports whether session id was ended. When the cached list is older
// than the refresh interval, one request reads it again while the others
// use the cached one (until the first read, all wait). A failed read keeps
// the cached list and is logged: the request then fails on its own if the
// database is down.
func (r *revocations) has(ctx context.Context, s *Server, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.loadedAt.IsZero()
	if !r.loading && (first || time.Since(r.loadedAt) >= s.opts.RevocationRefresh) {
		r.loading = true
		if !first {
			r.mu.Unlock()
		}
		ended, err := s.readRevocations(ctx)
		if !first {
			r.mu.Lock()
		}
		r.loading = false
		r.loadedAt = time.Now()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("reading ended login sessions; using the cached list", "err", err)
			}
		} else {
			// Sessions leave the table only when expired, so a cached one
			// missing from the read was ended here while the read ran.
			now := s.opts.Now().Unix()
			for k, v := range r.ids {
				if _, ok := ended[k]; !ok && (v == 0 || v > now) {
					ended[k] = v
				}
			}
			r.ids = ended
		}
	}
	exp, ok := r.ids[id]
	return ok && (exp == 0 || s.opts.Now().Unix() < exp)
}

func (s *Server) readRevocations(ctx context.Context) (map[string]int64, error) {
	var ended map[string]time.Time
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		ended, err = tx.RevokedSessions(s.opts.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(ended))
	for k, v := range ended {
		if v.Equal(farFuture) {
			out[k] = 0
		} else {
			out[k] = v.Unix()
		}
	}
	return out, nil
}

// add records a session this server ended.
func (r *revocations) add(id string, exp int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]int64{}
	}
	r.ids[id] = exp
}

// farFuture stands for "never" in revoked_sessions, for a session without
// an expiry.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// authLogout ends the presented token's session and clears the browser
// cookie. With a key pair there is no session to end.
func authLogout(s *Server, c *call) (any, error) {
	if c.respHeader != nil {
		http.Header(c.respHeader).Add("Set-Cookie", (&http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1}).String())
	}
	if c.claims == nil {
		return nil, nil
	}
	id, exp := c.claims.sessionKey(), c.claims.sessionExpiry()
	until := farFuture
	if exp != 0 {
		until = time.Unix(exp, 0)
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error { return tx.RevokeSession(id, until) })
	if err != nil {
		return nil, fmt.Errorf("ending the login session: %w", err)
	}
	s.revoked.add(id, exp)
	return nil, nil
}
