package apiclient_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/server"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, server, wantErr string
		noCreds               bool
	}{
		{name: "empty", server: "", wantErr: "no API server configured"},
		{name: "no scheme", server: "127.0.0.1:8008", wantErr: "scheme must be http or https"},
		{name: "ftp", server: "ftp://host", wantErr: "scheme must be http or https"},
		{name: "no host", server: "http://", wantErr: "no host"},
		{name: "userinfo", server: "http://user:hunter2@host", wantErr: "credentials belong"},
		{name: "query", server: "http://host?x=1", wantErr: "no query"},
		{name: "no credentials", server: "http://host", noCreds: true, wantErr: "missing credentials"},
		{name: "ok", server: "https://host:8008/api/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := apiclient.Config{Server: tt.server, AccessKey: "K", SecretKey: "S"}
			if tt.noCreds {
				cfg.SecretKey = ""
			}
			c, err := apiclient.New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if got, want := c.Server(), "https://host:8008/api"; got != want {
					t.Errorf("Server() = %q, want %q", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New(%q) error = %v, want it to contain %q", tt.server, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the URL password: %v", err)
			}
		})
	}
}

func TestLoginClaimsAndHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	c := e.client(nil)
	if err := c.Login(t.Context()); err != nil {
		t.Fatalf("Login: %v", err)
	}
	cl := c.Claims()
	if cl.APIVersion != api.MaxVersion || cl.FeatureSet != "basic" || cl.ServerVersion != api.ServerVersion {
		t.Errorf("claims = %+v, want api_version %s, feature_set basic, server_version %s", cl, api.MaxVersion, api.ServerVersion)
	}
	if cl.Company != api.DefaultCompany || cl.User == "" || cl.Role != "admin" {
		t.Errorf("identity claims = %q/%q/%q", cl.User, cl.Company, cl.Role)
	}
	if d := time.Until(cl.Exp); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("token expires in %v, want about 30 days", d)
	}
	if !c.HasExtension("long_poll") || c.HasExtension("telepathy") {
		t.Errorf("extensions = %v, want long_poll only", cl.Extensions)
	}
	if !c.AtLeastVersion("2.14") || c.AtLeastVersion("3.0") {
		t.Errorf("AtLeastVersion wrong for api_version %s", cl.APIVersion)
	}

	login := e.last("auth.login")
	if login.Path != "/auth.login" || login.Method != http.MethodGet || !strings.HasPrefix(login.Header.Get("Authorization"), "Basic ") {
		t.Errorf("login request = %s %s auth %q..., want GET /auth.login with Basic", login.Method, login.Path, login.Header.Get("Authorization")[:6])
	}
	if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
		t.Fatalf("GetDefaultQueue: %v", err)
	}
	got := e.last("queues.get_default")
	want := map[string]string{
		"Authorization": "Bearer " + c.Token(), "Content-Type": "application/json",
		"X-ClearML-Worker": "testhost", "X-Trains-Worker": "testhost", "X-ClearML-Agent": "api-test", "X-Trains-Agent": "api-test",
	}
	for k, v := range want {
		if got.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v)
		}
	}
	if got.Method != http.MethodGet || got.Path != "/v2.5/queues.get_default" || string(got.Body) != "{}" {
		t.Errorf("request = %s %s %s, want GET /v2.5/queues.get_default {}", got.Method, got.Path, got.Body)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html><body>Welcome to nginx!</body></html>"))
	}))
	t.Cleanup(html.Close)

	tests := []struct {
		name          string
		server        string
		secret        string
		wantMsg       string
		wantRetryable bool
		wantUnauth    bool
	}{
		{name: "bad secret", server: e.URL, secret: "wrong", wantMsg: "failed getting token (error 401 from " + e.URL + "): Invalid user credentials", wantUnauth: true},
		{name: "no server", server: dead.URL, wantMsg: "it seems *api_server* is misconfigured", wantRetryable: true},
		{name: "not an API server", server: html.URL, wantMsg: "Welcome to nginx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := e.config()
			cfg.Server = tt.server
			if tt.secret != "" {
				cfg.SecretKey = tt.secret
			}
			c, err := apiclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Login(t.Context())
			var le *apiclient.LoginError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Login error = %v, want a LoginError containing %q", err, tt.wantMsg)
			}
			if apiclient.IsRetryable(err) != tt.wantRetryable || apiclient.IsUnauthorized(err) != tt.wantUnauth {
				t.Errorf("IsRetryable = %v, IsUnauthorized = %v, want %v, %v", apiclient.IsRetryable(err), apiclient.IsUnauthorized(err), tt.wantRetryable, tt.wantUnauth)
			}
			if tt.wantRetryable && !errors.Is(err, apiclient.ErrUnreachable) {
				t.Errorf("Login error = %v, want ErrUnreachable after retries", err)
			}
		})
	}
}

func TestTokenMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, nil)
	first := e.client(nil)
	if err := first.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := e.client(func(cfg *apiclient.Config) {
		cfg.AccessKey, cfg.SecretKey, cfg.Token = "", "", first.Token()
	})
	if !c.HasExtension("long_poll") || c.Claims().APIVersion != api.MaxVersion {
		t.Errorf("claims of a configured token not read: %+v", c.Claims())
	}
	if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
		t.Fatalf("call with a configured token: %v", err)
	}
	if n := e.count("auth.login"); n != 1 {
		t.Errorf("auth.login calls = %d, want 1 (the configured token is used as is)", n)
	}
	if err := c.Login(t.Context()); err != nil {
		t.Fatalf("Login with a token: %v", err)
	}
	if got := e.last("auth.login").Header.Get("Authorization"); got != "Bearer "+first.Token() {
		t.Errorf("token-mode login sent %.10q..., want the current token as Bearer", got)
	}
	if c.Token() == first.Token() || c.Token() == "" {
		t.Error("token-mode login did not store a new token")
	}
}

func TestReloginOn401(t *testing.T) {
	t.Parallel()
	reject := func(times int) hookFunc {
		return func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
			if ep == "queues.get_default" && n <= times {
				writeEnvelope(w, 401, 30, "Invalid token")
				return true
			}
			return false
		}
	}
	tests := []struct {
		name       string
		hook       hookFunc
		expire     bool // advance the server's clock past the token's expiry
		wantErr    bool
		wantLogins int
		wantCalls  int
	}{
		{name: "one rejection", hook: reject(1), wantLogins: 2, wantCalls: 2},
		{name: "always rejected", hook: reject(100), wantErr: true, wantLogins: 2, wantCalls: 2},
		{name: "token expired on the server", expire: true, wantLogins: 2, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			offset := time.Duration(0)
			now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
			e := newEnv(t, server.Options{Now: now}, tt.hook)
			c := e.client(nil)
			if err := c.Login(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tt.expire {
				mu.Lock()
				offset = 31 * 24 * time.Hour
				mu.Unlock()
			}
			_, _, err := c.GetDefaultQueue(t.Context())
			if tt.wantErr != (err != nil) {
				t.Fatalf("GetDefaultQueue error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && (!apiclient.IsUnauthorized(err) || apiclient.IsRetryable(err)) {
				t.Errorf("error %v: IsUnauthorized = %v, IsRetryable = %v", err, apiclient.IsUnauthorized(err), apiclient.IsRetryable(err))
			}
			if got := e.count("auth.login"); got != tt.wantLogins {
				t.Errorf("auth.login calls = %d, want %d", got, tt.wantLogins)
			}
			if got := e.count("queues.get_default"); got != tt.wantCalls {
				t.Errorf("queues.get_default calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestProactiveRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		ttl        time.Duration
		advance    time.Duration
		wantLogins int
	}{
		{name: "long token, far from expiry", ttl: 30 * 24 * time.Hour, advance: 20 * 24 * time.Hour, wantLogins: 1},
		{name: "long token, within 12h of expiry", ttl: 30 * 24 * time.Hour, advance: 29*24*time.Hour + 13*time.Hour, wantLogins: 2},
		{name: "short token, more than half left", ttl: time.Hour, advance: 20 * time.Minute, wantLogins: 1},
		{name: "short token, less than half left", ttl: time.Hour, advance: 31 * time.Minute, wantLogins: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, server.Options{TokenTTL: tt.ttl}, nil)
			clock := newFakeClock()
			c := e.client(func(cfg *apiclient.Config) { cfg.Now = clock.Now })
			if err := c.Login(t.Context()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			for range 3 {
				if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if got := e.count("auth.login"); got != tt.wantLogins {
				t.Errorf("auth.login calls = %d, want %d", got, tt.wantLogins)
			}
		})
	}
}

func TestSingleFlightLogin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	slowLogin := func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "auth.login" {
			// A slow login, so that the callers pile up on it (a correct
			// client logs in once however the calls interleave).
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}
	e := newEnv(t, server.Options{Now: now}, slowLogin)
	c := e.client(nil)
	run := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
					t.Errorf("GetDefaultQueue: %v", err)
				}
			})
		}
		wg.Wait()
	}
	run()
	if got := e.count("auth.login"); got != 1 {
		t.Errorf("first logins = %d, want 1", got)
	}
	mu.Lock()
	offset = 31 * 24 * time.Hour // every token in use is now refused with 401
	mu.Unlock()
	run()
	if got := e.count("auth.login"); got != 2 {
		t.Errorf("logins after expiry = %d, want 2", got)
	}
}

func TestConfiguredTokenClaims(t *testing.T) {
	t.Parallel()
	jwt := func(payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".sig"
	}
	tests := []struct {
		name    string
		token   string
		want    apiclient.Claims
		wantErr bool
	}{
		{name: "no api_version", token: jwt(`{"identity":{"user":"u1","company":"c1","role":"user"}}`),
			want: apiclient.Claims{APIVersion: "2.1", User: "u1", Company: "c1", Role: "user"}},
		{name: "prod env", token: jwt(`{"env":"prod","exp":2000000000}`),
			want: apiclient.Claims{APIVersion: "2.2", Exp: time.Unix(2000000000, 0)}},
		{name: "full", token: jwt(`{"api_version":"2.31","server_version":"2.0.0","feature_set":"basic","extensions":["long_poll"]}`),
			want: apiclient.Claims{APIVersion: "2.31", ServerVersion: "2.0.0", FeatureSet: "basic", Extensions: []string{"long_poll"}}},
		{name: "not a JWT", token: "abc", wantErr: true},
		{name: "payload not JSON", token: "a.bm90IGpzb24.c", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := apiclient.New(apiclient.Config{Server: "http://127.0.0.1:1", Token: tt.token})
			if tt.wantErr {
				if err == nil {
					t.Fatal("New accepted a malformed token")
				}
				if strings.Contains(err.Error(), tt.token) {
					t.Errorf("error %q contains the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Claims(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Claims = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFailedRefreshKeepsValidToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Options{}, func(w http.ResponseWriter, r *http.Request, ep string, n int) bool {
		if ep == "auth.login" && n > 1 {
			writeEnvelope(w, 503, 0, "maintenance")
			return true
		}
		return false
	})
	clock := newFakeClock()
	c := e.client(func(cfg *apiclient.Config) { cfg.Now = clock.Now })
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok := c.Token()
	clock.Advance(29*24*time.Hour + 20*time.Hour) // in the refresh window, not expired
	if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
		t.Fatalf("call with a failed refresh: %v", err)
	}
	if c.Token() != tok || e.count("auth.login") < 2 {
		t.Errorf("logins = %d, token changed = %v; want a refresh attempt and the old token kept", e.count("auth.login"), c.Token() != tok)
	}
}

// TestTokenModeRenewalEndsWithSession: our server renews a token only up
// to the end of the key-pair login it came from. A client in token mode
// that also has a key pair then logs in with the key pair; one with only a
// token works until the session ends and then gets 401.
func TestTokenModeRenewalEndsWithSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		keyPair  bool
		wantAuth string // scheme of the last auth.login
	}{
		{name: "token and key pair", keyPair: true, wantAuth: "Basic "},
		{name: "token only", keyPair: false, wantAuth: "Bearer "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			e := newEnv(t, server.Options{Now: clock.Now}, nil)
			first := e.client(func(cfg *apiclient.Config) { cfg.Now = clock.Now })
			if err := first.Login(t.Context()); err != nil {
				t.Fatal(err)
			}
			sessionEnd := first.Claims().Exp
			c := e.client(func(cfg *apiclient.Config) {
				cfg.Now, cfg.Token = clock.Now, first.Token()
				if !tt.keyPair {
					cfg.AccessKey, cfg.SecretKey = "", ""
				}
			})
			clock.Advance(29*24*time.Hour + 13*time.Hour) // 11 h left: inside the 12 h refresh window
			if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
				t.Fatalf("call in the refresh window: %v", err)
			}
			if got := e.last("auth.login").Header.Get("Authorization"); !strings.HasPrefix(got, tt.wantAuth) {
				t.Errorf("last auth.login sent %.7q..., want %q", got, tt.wantAuth)
			}
			if !tt.keyPair {
				if !c.Claims().Exp.Equal(sessionEnd) {
					t.Errorf("renewed token expires %v, want the session's end %v", c.Claims().Exp, sessionEnd)
				}
				clock.Advance(12 * time.Hour)
				_, _, err := c.GetDefaultQueue(t.Context())
				if !apiclient.IsUnauthorized(err) {
					t.Fatalf("call after the session ended: %v, want 401", err)
				}
				return
			}
			if want := clock.Now().Add(30 * 24 * time.Hour); c.Claims().Exp.Before(want.Add(-time.Minute)) {
				t.Errorf("token after the key-pair login expires %v, want about %v", c.Claims().Exp, want)
			}
			clock.Advance(12 * time.Hour) // past the first session's end
			if _, _, err := c.GetDefaultQueue(t.Context()); err != nil {
				t.Fatalf("call after the first session ended: %v", err)
			}
		})
	}
}
