package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
)

// jwtClaims decodes a token's claims without verifying it, as the clients do.
func jwtClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a three-part JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		t.Fatalf("token claims: %v", err)
	}
	return claims
}

func claimInt(t testing.TB, claims map[string]any, key string) int64 {
	t.Helper()
	n, ok := claims[key].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %v, want a number", key, claims[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %v: %v", key, n, err)
	}
	return v
}

func basicAuth(key, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret))
}

// login calls /auth.login with the given Authorization and query and
// returns the exchange (checked as an envelope) and the token on success.
func loginWith(t testing.TB, c *client, authz, query string) (exchangeResult, string) {
	t.Helper()
	r := httpExchange(t, buildRequest(t, c, "GET", "/auth.login"+query, nil, map[string]string{"Authorization": authz, "Content-Type": ""}))
	assertEnvelope(t, "auth.login"+query, r)
	var data api.LoginResponse
	json.Unmarshal(r.env.Data, &data)
	return r, data.Token
}

// callAs calls endpoint with the given Authorization header value.
func callAs(t testing.TB, c *client, authz, endpoint, body string) exchangeResult {
	t.Helper()
	r := httpExchange(t, buildRequest(t, c, "GET", "/"+endpoint, []byte(body), map[string]string{"Authorization": authz}))
	assertEnvelope(t, endpoint, r)
	return r
}

func TestAuthLoginToken(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		basic := basicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
		r, token := loginWith(t, c, basic, "")
		if r.code != 200 || token == "" {
			t.Fatalf("login: %d %s", r.code, r.env.Meta.ResultMsg)
		}
		claims := jwtClaims(t, token)
		apiVersion, _ := claims["api_version"].(string)
		major, minor, ok := api.ParseVersion(apiVersion)
		if !ok || major < 2 || (major == 2 && minor < 23) {
			t.Errorf("api_version claim %q, want >= 2.23 (the SDK's newest service module)", apiVersion)
		}
		if v, _ := claims["server_version"].(string); v == "" {
			t.Errorf("server_version claim missing: %v", claims)
		}
		if claims["feature_set"] != "basic" {
			t.Errorf("feature_set = %v, want basic", claims["feature_set"])
		}
		ident, _ := claims["identity"].(map[string]any)
		for _, k := range []string{"user", "company", "role"} {
			if v, _ := ident[k].(string); v == "" {
				t.Errorf("identity.%s missing: %v", k, ident)
			}
		}
		if ident["company"] != api.DefaultCompany {
			t.Errorf("identity.company = %v, want %s", ident["company"], api.DefaultCompany)
		}
		wantExp := time.Now().Add(30 * 24 * time.Hour).Unix()
		if exp := claimInt(t, claims, "exp"); exp < wantExp-120 || exp > wantExp+120 {
			t.Errorf("exp = %d, want about %d (30 days ahead)", exp, wantExp)
		}

		// The requested lifetime, sent as a query parameter as the clients do.
		r, short := loginWith(t, c, basic, "?expiration_sec=60")
		if r.code != 200 {
			t.Fatalf("login ?expiration_sec=60: %d %s", r.code, r.env.Meta.ResultMsg)
		}
		sc := jwtClaims(t, short)
		if d := claimInt(t, sc, "exp") - claimInt(t, sc, "iat"); d != 60 {
			t.Errorf("expiration_sec=60 gave a %d s token", d)
		}
		if r, _ := loginWith(t, c, basic, "?expiration_sec=31536000"); r.code != 200 {
			t.Errorf("expiration_sec of exactly one year: %d %s", r.code, r.env.Meta.ResultMsg)
		}
		for _, q := range []string{"?expiration_sec=31536001", "?expiration_sec=0", "?expiration_sec=-5", "?expiration_sec=abc",
			"?expiration_sec=10000000000", "?expiration_sec=9223372036854775807", "?expiration_sec=1.5"} {
			if r, _ := loginWith(t, c, basic, q); r.code != 400 || r.env.Meta.ResultSubcode != 12 {
				t.Errorf("login %s: %d/%d %s, want 400/12", q, r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg)
			}
		}

		// Refresh with the Bearer token (what a client without credentials does).
		r, fresh := loginWith(t, c, "Bearer "+token, "")
		if r.code != 200 || fresh == "" || fresh == token {
			t.Fatalf("Bearer refresh: %d %s (same token: %v)", r.code, r.env.Meta.ResultMsg, fresh == token)
		}
		if got := jwtClaims(t, fresh)["identity"].(map[string]any)["user"]; got != ident["user"] {
			t.Errorf("refreshed token is for user %v, want %v", got, ident["user"])
		}
		if r := callAs(t, c, "Bearer "+fresh, "tasks.get_all", `{}`); r.code != 200 {
			t.Errorf("refreshed token refused: %d %s", r.code, r.env.Meta.ResultMsg)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		creds := c.ts.Creds
		// A valid token with its claims changed keeps a now wrong signature.
		parts := strings.Split(c.token, ".")
		claims := jwtClaims(t, c.token)
		claims["identity"].(map[string]any)["role"] = "root"
		payload, _ := json.Marshal(claims)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		cases := []struct {
			name    string
			authz   string
			subcode int
		}{
			{"no header", "", 20},
			{"unknown scheme", "Digest username=x", 10},
			{"token without scheme", c.token, 10},
			{"undecodable basic", "Basic !!!not-base64!!!", 21},
			{"basic without colon", "Basic " + base64.StdEncoding.EncodeToString([]byte(creds.AccessKey)), 21},
			{"wrong secret", basicAuth(creds.AccessKey, creds.SecretKey+"x"), 22},
			{"unknown key", basicAuth("NOSUCHKEY0000000000000000", creds.SecretKey), 22},
			{"empty basic pair", basicAuth("", ""), 22},
			{"garbage bearer", "Bearer garbage", 30},
			{"empty bearer", "Bearer ", 30},
			{"three garbage parts", "Bearer a.b.c", 30},
			{"tampered claims", "Bearer " + tampered, 30},
			{"signature dropped", "Bearer " + parts[0] + "." + parts[1] + ".", 30},
		}
		for _, tc := range cases {
			for _, endpoint := range []string{"tasks.get_all", "auth.login"} {
				r := callAs(t, c, tc.authz, endpoint, `{}`)
				if r.code != 401 || r.env.Meta.ResultSubcode != tc.subcode {
					t.Errorf("%s on %s: %d/%d %s, want 401/%d", tc.name, endpoint, r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg, tc.subcode)
				}
				if string(r.env.Data) != "{}" {
					t.Errorf("%s on %s: data %s, want {}", tc.name, endpoint, r.env.Data)
				}
			}
		}
		// Basic credentials work on every endpoint, not only auth.login.
		basic := basicAuth(creds.AccessKey, creds.SecretKey)
		for _, ep := range []string{"tasks.get_all", "queues.get_default", "users.get_current_user", "server.info"} {
			if r := callAs(t, c, basic, ep, `{}`); r.code != 200 {
				t.Errorf("Basic on %s: %d %s", ep, r.code, r.env.Meta.ResultMsg)
			}
		}
		// The browser cookie counts as a Bearer token when there is no header.
		req := buildRequest(t, c, "GET", "/tasks.get_all", nil, map[string]string{"Authorization": ""})
		req.AddCookie(&http.Cookie{Name: "clearml_token_basic", Value: c.token})
		if r := httpExchange(t, req); r.code != 200 {
			t.Errorf("cookie token: %d %s", r.code, r.env.Meta.ResultMsg)
		}
		// debug.ping needs no authentication, and ignores bad credentials.
		for _, authz := range []string{"", "Bearer garbage", "Digest x"} {
			for _, path := range []string{"/debug.ping", "/v2.9/debug.ping"} {
				r := httpExchange(t, buildRequest(t, c, "GET", path, nil, map[string]string{"Authorization": authz}))
				assertEnvelope(t, path, r)
				var data map[string]any
				json.Unmarshal(r.env.Data, &data)
				if r.code != 200 || data["msg"] == nil {
					t.Errorf("%s with %q: %d %s %v", path, authz, r.code, r.env.Meta.ResultMsg, data)
				}
			}
		}
	})
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (k *testClock) Now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.now
}

func (k *testClock) Advance(d time.Duration) {
	k.mu.Lock()
	k.now = k.now.Add(d)
	k.mu.Unlock()
}

func TestAuthTokenExpiry(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			clock := &testClock{now: time.Now()}
			c := newTestServer(t, b.open(t), server.Options{Now: clock.Now})
			basic := basicAuth(c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)
			_, long := loginWith(t, c, basic, "")
			_, short := loginWith(t, c, basic, "?expiration_sec=60")
			for _, tok := range []string{long, short} {
				if r := callAs(t, c, "Bearer "+tok, "tasks.get_all", `{}`); r.code != 200 {
					t.Fatalf("fresh token refused: %d %s", r.code, r.env.Meta.ResultMsg)
				}
			}
			clock.Advance(59 * time.Second)
			if r := callAs(t, c, "Bearer "+short, "tasks.get_all", `{}`); r.code != 200 {
				t.Fatalf("60 s token refused after 59 s: %d %s", r.code, r.env.Meta.ResultMsg)
			}
			clock.Advance(2 * time.Second)
			// The short token was used (and cached) before; expiry must win.
			if r := callAs(t, c, "Bearer "+short, "tasks.get_all", `{}`); r.code != 401 || r.env.Meta.ResultSubcode != 30 {
				t.Fatalf("expired 60 s token: %d/%d %s, want 401/30", r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg)
			}
			if r, _ := loginWith(t, c, "Bearer "+short, ""); r.code != 401 || r.env.Meta.ResultSubcode != 30 {
				t.Fatalf("refresh with an expired token: %d/%d, want 401/30", r.code, r.env.Meta.ResultSubcode)
			}
			if r := callAs(t, c, "Bearer "+long, "tasks.get_all", `{}`); r.code != 200 {
				t.Fatalf("30-day token refused after 61 s: %d %s", r.code, r.env.Meta.ResultMsg)
			}
			clock.Advance(30 * 24 * time.Hour)
			if r := callAs(t, c, "Bearer "+long, "tasks.get_all", `{}`); r.code != 401 || r.env.Meta.ResultSubcode != 30 {
				t.Fatalf("expired 30-day token: %d/%d %s, want 401/30", r.code, r.env.Meta.ResultSubcode, r.env.Meta.ResultMsg)
			}
			// Basic still works, and the new token's lifetime follows the clock.
			r, again := loginWith(t, c, basic, "")
			if r.code != 200 {
				t.Fatalf("login after expiry: %d %s", r.code, r.env.Meta.ResultMsg)
			}
			want := clock.Now().Add(30 * 24 * time.Hour).Unix()
			if exp := claimInt(t, jwtClaims(t, again), "exp"); exp != want {
				t.Fatalf("new token exp = %d, want %d", exp, want)
			}
		})
	}
}

func TestAuthQueryMerge(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		for _, n := range []string{"query one", "query two", "query three"} {
			c.createTask(n)
		}
		c.ok("tasks.create", map[string]any{"name": "hidden task", "type": "training", "system_tags": []string{"hidden"}})
		count := func(path, body string) int {
			t.Helper()
			r := httpExchange(t, buildRequest(t, c, "GET", path, []byte(body), nil))
			assertEnvelope(t, path, r)
			if r.code != 200 {
				t.Fatalf("%s: %d %s", path, r.code, r.env.Meta.ResultMsg)
			}
			var data struct{ Tasks []map[string]any }
			json.Unmarshal(r.env.Data, &data)
			return len(data.Tasks)
		}
		for _, tc := range []struct {
			path, body string
			want       int
		}{
			{"/tasks.get_all", "", 3},
			{"/tasks.get_all?page_size=1", "", 1},
			{"/tasks.get_all?page_size=2", `{"page_size": 3}`, 2}, // the query wins
			{"/tasks.get_all?page_size=2&page=1", "", 1},
			{"/tasks.get_all?search_hidden=true", "", 4},
			{"/tasks.get_all?search_hidden=True", `{"search_hidden": false}`, 4},
			{"/tasks.get_all?search_hidden=false", `{"search_hidden": true}`, 3},
			{"/v2.23/tasks.get_all?name=%5Equery&search_hidden=TRUE", "", 3},
			{"/tasks.get_all?name=one&name=two", "", -1}, // a repeated key is a list: 400/12 for name
		} {
			if tc.want < 0 {
				r := httpExchange(t, buildRequest(t, c, "GET", tc.path, nil, nil))
				assertEnvelope(t, tc.path, r)
				if r.code != 400 {
					t.Errorf("%s: %d, want 400 (name as a list)", tc.path, r.code)
				}
				continue
			}
			if got := count(tc.path, tc.body); got != tc.want {
				t.Errorf("%s %s: %d tasks, want %d", tc.path, tc.body, got, tc.want)
			}
		}

		// debug.ping echoes its body, which shows the conversions exactly.
		q := "?i=12&f=1.5&t=true&T=TRUE&F=False&s=abc&z=007&neg=-1&dot=.&ver=1.2.3&e=&l[]=1&rep=a&rep=2&a.b.c=x&over=9"
		r := httpExchange(t, buildRequest(t, c, "GET", "/debug.ping"+q, []byte(`{"over": "body", "keep": [1]}`), nil))
		assertEnvelope(t, "debug.ping", r)
		var got map[string]any
		json.Unmarshal(r.env.Data, &got)
		want := map[string]any{"i": 12.0, "f": 1.5, "t": true, "T": true, "F": false, "s": "abc", "z": 7.0,
			"neg": "-1", "dot": ".", "ver": "1.2.3", "e": "", "l": []any{1.0}, "rep": []any{"a", 2.0},
			"a": map[string]any{"b": map[string]any{"c": "x"}}, "over": 9.0, "keep": []any{1.0}}
		for k, w := range want {
			if g, _ := json.Marshal(got[k]); string(g) != mustJSON(w) {
				t.Errorf("query %s: echoed %s, want %s", k, g, mustJSON(w))
			}
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAuthMetaFields(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		seen := map[string]bool{}
		for _, tc := range []struct {
			path, header, value string
			code                int
		}{
			{"/tasks.get_all", "X-ClearML-Trx", "trx-123", 200},
			{"/tasks.get_all", "X-Trains-Trx", "old-trx", 200},
			{"/v2.5/no.endpoint", "X-ClearML-Trx", "trx-err", 404},
			{"/tasks.get_by_id", "x-clearml-trx", "lower", 400},
			{"/v2.23/tasks.get_all", "", "", 200},
		} {
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[tc.header] = tc.value
			}
			r := httpExchange(t, buildRequest(t, c, "GET", tc.path, nil, hdr))
			assertEnvelope(t, tc.path, r)
			m := r.env.Meta
			if r.code != tc.code {
				t.Errorf("%s: %d %s, want %d", tc.path, r.code, m.ResultMsg, tc.code)
			}
			if seen[m.ID] {
				t.Errorf("%s: meta.id %s repeated", tc.path, m.ID)
			}
			seen[m.ID] = true
			wantTrx := tc.value
			if wantTrx == "" {
				wantTrx = m.ID
			}
			if m.Trx != wantTrx {
				t.Errorf("%s: meta.trx %q, want %q", tc.path, m.Trx, wantTrx)
			}
			if m.Endpoint.Name == "" || m.Endpoint.RequestedVersion == "" || m.Endpoint.ActualVersion == "" {
				t.Errorf("%s: incomplete meta.endpoint %+v", tc.path, m.Endpoint)
			}
		}
		_, env := c.raw("tasks.get_all", nil)
		if env.Meta.Endpoint.RequestedVersion != api.MaxVersion {
			t.Errorf("unversioned call: requested_version %q, want %s", env.Meta.Endpoint.RequestedVersion, api.MaxVersion)
		}
		_, env = c.at("2.5").raw("tasks.get_all", nil)
		if env.Meta.Endpoint.RequestedVersion != "2.5" || env.Meta.Endpoint.Name != "tasks.get_all" {
			t.Errorf("/v2.5/ call: endpoint %+v", env.Meta.Endpoint)
		}
	})
}

// TestAuthSecretNeverReturned: no answer, success or failure, carries the
// secret key, in the body or in a header.
func TestAuthSecretNeverReturned(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		creds := c.ts.Creds
		secret := creds.SecretKey
		basic := basicAuth(creds.AccessKey, secret)
		type call struct{ authz, path, body string }
		calls := []call{
			{basic, "/auth.login", ""},
			{basic, "/auth.login?expiration_sec=99999999999", ""},
			{basic, "/users.get_current_user", "{}"},
			{basic, "/server.info", "{}"},
			{basic, "/tasks.get_all", "{}"},
			{basic, "/workers.get_all", "{}"},
			{basicAuth(creds.AccessKey, secret+"x"), "/auth.login", ""},
			{basicAuth(secret, secret), "/auth.login", ""},
			{basicAuth(secret, creds.AccessKey), "/tasks.get_all", ""},
			{"Basic " + secret, "/auth.login", ""},
			{"Bearer " + secret, "/auth.login", ""},
			{secret, "/auth.login", ""},
			{"Basic " + base64.StdEncoding.EncodeToString([]byte(secret)), "/tasks.get_all", ""},
			{basic, "/tasks.get_all", `{"name": "` + secret + `(["}`},
			{basic, "/tasks.get_by_id", `{"task": 1}`},
		}
		for _, cl := range calls {
			r := httpExchange(t, buildRequest(t, c, "GET", cl.path, []byte(cl.body), map[string]string{"Authorization": cl.authz}))
			assertEnvelope(t, cl.path, r)
			if bytes.Contains(r.raw, []byte(secret)) && !strings.Contains(cl.body, secret) {
				t.Errorf("%s (%s): response carries the secret key: %s", cl.path, cl.authz[:min(len(cl.authz), 6)], r.raw)
			}
			for k, vs := range r.header {
				for _, v := range vs {
					if strings.Contains(v, secret) {
						t.Errorf("%s: header %s carries the secret key", cl.path, k)
					}
				}
			}
		}
	})
}
