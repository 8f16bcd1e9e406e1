package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
)

// replicaOf starts another server over the same database (a second store
// for PostgreSQL; the same store for SQLite, whose file one process owns)
// and returns a client for it with c's credentials.
func replicaOf(t *testing.T, c *client, dsn string, opts server.Options) *client {
	t.Helper()
	st := c.ts.Store
	if st.Dialect() == "postgres" {
		st = openStore(t, dsn)
	}
	srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ts := *c.ts
	ts.URL, ts.Srv = hs.URL, srv
	rc := *c
	rc.ts = &ts
	return &rc
}

// wantStatus checks that a token gets the given status on tasks.get_all.
func wantStatus(t *testing.T, c *client, what, token string, code int) {
	t.Helper()
	r := callAs(t, c, "Bearer "+token, "tasks.get_all", `{}`)
	if r.code != code || (code == 401 && r.env.Meta.ResultSubcode != 30) {
		t.Fatalf("%s: %d/%d %s, want %d%s", what, r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg, code,
			map[bool]string{true: "/30"}[code == 401])
	}
}

// TestAuthLogoutRevokes: auth.logout ends the presented token's session,
// with every token renewed from it, on every replica and after a restart;
// other sessions keep working. Before, logout did nothing.
func TestAuthLogoutRevokes(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.open(t)
			c := newTestServer(t, dsn, server.Options{})
			other := replicaOf(t, c, dsn, server.Options{RevocationRefresh: 50 * time.Millisecond})
			basic := basicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
			_, a := loginWith(t, c, basic, "")
			_, renewed := loginWith(t, c, "Bearer "+a, "")
			_, separate := loginWith(t, c, basic, "")
			ca, cr := jwtClaims(t, a), jwtClaims(t, renewed)
			if ca["session_id"] != cr["session_id"] || ca["jti"] == cr["jti"] || ca["jti"] == nil {
				t.Fatalf("renewal: session %v -> %v, jti %v -> %v; want the same session and a new token id",
					ca["session_id"], cr["session_id"], ca["jti"], cr["jti"])
			}
			for _, tok := range []string{a, renewed, separate} {
				wantStatus(t, other, "token before logout, other replica", tok, 200) // cached there now
			}

			r := callAs(t, c, "Bearer "+renewed, "auth.logout", `{}`)
			if r.code != 200 || string(r.env.Data) != "{}" {
				t.Fatalf("auth.logout: %d %s %s", r.code, r.env.Meta.ResultMsg, r.env.Data)
			}
			if ck := r.header.Get("Set-Cookie"); !strings.HasPrefix(ck, "clearml_token_basic=;") || !strings.Contains(ck, "Max-Age=0") {
				t.Errorf("auth.logout Set-Cookie = %q, want the token cookie cleared", ck)
			}
			for _, tok := range []string{a, renewed} {
				wantStatus(t, c, "token of the ended session", tok, 401)
				if r, _ := loginWith(t, c, "Bearer "+tok, ""); r.code != 401 || r.env.Meta.ResultSubcode != 30 {
					t.Fatalf("renewal with a token of the ended session: %d/%d, want 401/30", r.code, r.env.Meta.ResultSubcode)
				}
				req := buildRequest(t, c, "GET", "/tasks.get_all", nil, map[string]string{"Authorization": ""})
				req.AddCookie(&http.Cookie{Name: "clearml_token_basic", Value: tok})
				if r := httpExchange(t, req); r.code != 401 {
					t.Fatalf("cookie of the ended session: %d", r.code)
				}
			}
			wantStatus(t, c, "token of another session", separate, 200)
			// The other replica learns of the logout from the database.
			eventually(t, 10*time.Second, func() bool {
				return callAs(t, other, "Bearer "+a, "tasks.get_all", `{}`).code == 401
			}, "the other replica to refuse the logged-out token")
			wantStatus(t, other, "renewed token on the other replica", renewed, 401)
			wantStatus(t, other, "token of another session on the other replica", separate, 200)
			// A server started later reads the ended sessions at once.
			later := replicaOf(t, c, dsn, server.Options{})
			wantStatus(t, later, "ended session on a new server", a, 401)
			wantStatus(t, later, "other session on a new server", separate, 200)
			// Logging out with a key pair ends no session.
			if r := callAs(t, c, basic, "auth.logout", `{}`); r.code != 200 {
				t.Fatalf("auth.logout with a key pair: %d %s", r.code, r.env.Meta.ResultMsg)
			}
			wantStatus(t, c, "token after a key-pair logout", separate, 200)
		})
	}
}

// TestAuthRenewalKeepsSessionExpiry: a token renewed from a token expires
// no later than the key-pair login it descends from, so a token alone
// cannot be renewed forever. Before, every renewal added 30 days.
func TestAuthRenewalKeepsSessionExpiry(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := &testClock{now: time.Now().Truncate(time.Second)}
			c := newTestServer(t, b.open(t), server.Options{Now: clock.Now})
			basic := basicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
			_, tok := loginWith(t, c, basic, "")
			first := jwtClaims(t, tok)
			sessionEnd := claimInt(t, first, "exp")
			if want := clock.Now().Add(30 * 24 * time.Hour).Unix(); sessionEnd != want {
				t.Fatalf("key-pair login exp = %d, want %d", sessionEnd, want)
			}
			if got := claimInt(t, first, "session_exp"); got != sessionEnd {
				t.Fatalf("session_exp = %d, want the token's exp %d", got, sessionEnd)
			}
			steps := []struct {
				advance time.Duration
				query   string
				wantExp func() int64
			}{
				{10 * 24 * time.Hour, "", func() int64 { return sessionEnd }},
				{time.Hour, "?expiration_sec=60", func() int64 { return clock.Now().Unix() + 60 }},
				{30 * time.Second, "", func() int64 { return sessionEnd }}, // a short renewal does not shorten the session
				{19*24*time.Hour + 22*time.Hour, "", func() int64 { return sessionEnd }},
			}
			for i, st := range steps {
				clock.Advance(st.advance)
				r, next := loginWith(t, c, "Bearer "+tok, st.query)
				if r.code != 200 {
					t.Fatalf("renewal %d: %d %s", i, r.code, r.env.Meta.ResultMsg)
				}
				cl := jwtClaims(t, next)
				if got, want := claimInt(t, cl, "exp"), st.wantExp(); got != want {
					t.Fatalf("renewal %d exp = %d, want %d (session ends %d)", i, got, want, sessionEnd)
				}
				if claimInt(t, cl, "session_exp") != sessionEnd || cl["session_id"] != first["session_id"] {
					t.Fatalf("renewal %d left the session: %v", i, cl)
				}
				tok = next
			}
			wantStatus(t, c, "renewed token before the session ends", tok, 200)
			clock.Advance(2 * time.Hour) // past the session's end
			if r, _ := loginWith(t, c, "Bearer "+tok, ""); r.code != 401 || r.env.Meta.ResultSubcode != 30 {
				t.Fatalf("renewal after the session ended: %d/%d, want 401/30", r.code, r.env.Meta.ResultSubcode)
			}
			wantStatus(t, c, "token after the session ended", tok, 401)
			// The key pair starts a new session.
			r, fresh := loginWith(t, c, basic, "")
			if r.code != 200 {
				t.Fatalf("key-pair login: %d %s", r.code, r.env.Meta.ResultMsg)
			}
			if cl := jwtClaims(t, fresh); cl["session_id"] == first["session_id"] || claimInt(t, cl, "exp") != clock.Now().Add(30*24*time.Hour).Unix() {
				t.Fatalf("key-pair login after the session ended: %v", cl)
			}
		})
	}
}
