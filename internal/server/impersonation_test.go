package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func tokenUser(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Identity struct{ User, Role string } }
	json.Unmarshal(raw, &c)
	return c.Identity.User
}

func TestImpersonationAndUserAdmin(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, c *client) {
		bob := c.ok("auth.create_user", map[string]any{"name": "bob"})["id"].(string)
		c.fail("auth.create_user", map[string]any{"name": "eve", "role": "root"}, 400, 12)
		creds := c.ok("auth.create_credentials", map[string]any{"user": bob})["credentials"].(map[string]any)
		login := func(auth string, headers map[string]string) (int, map[string]any, string) {
			req, _ := http.NewRequest("GET", c.ts.URL+"/auth.login", nil)
			req.Header.Set("Authorization", auth)
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			code, env := do(t, req)
			var data struct{ Token string }
			json.Unmarshal(env.Data, &data)
			return code, map[string]any{"subcode": env.Meta.ResultSubcode}, data.Token
		}
		// The admin may log in as bob.
		code, _, tok := login("Bearer "+c.token, map[string]string{"X-Clearml-Impersonate-As": bob})
		if code != 200 || tokenUser(t, tok) != bob {
			t.Fatalf("admin impersonation: %d user %s", code, tokenUser(t, tok))
		}
		// Bob may not impersonate the admin; Act-As with Impersonate-As is refused.
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(creds["access_key"].(string)+":"+creds["secret_key"].(string)))
		_, bobMeta, bobTok := login(basic, nil)
		if tokenUser(t, bobTok) != bob || bobMeta["subcode"] != 0 {
			t.Fatalf("bob's own login failed")
		}
		admin := tokenUser(t, c.token)
		if code, meta, _ := login(basic, map[string]string{"X-Clearml-Impersonate-As": admin}); code != 400 || meta["subcode"] != 6 {
			t.Fatalf("non-admin impersonation: %d %v", code, meta)
		}
		if code, meta, _ := login("Bearer "+c.token, map[string]string{"X-Clearml-Impersonate-As": bob, "X-Clearml-Act-As": bob}); code != 400 || meta["subcode"] != 5 {
			t.Fatalf("both headers: %d %v", code, meta)
		}
		if code, meta, _ := login("Bearer "+c.token, map[string]string{"X-Clearml-Impersonate-As": "ffffffffffffffffffffffffffffffff"}); code != 400 || meta["subcode"] != 301 {
			t.Fatalf("unknown user: %d %v", code, meta)
		}
		// Bob may not create users or credentials for others.
		bobClient := *c
		bobClient.token = bobTok
		bobClient.fail("auth.create_user", map[string]any{"name": "mallory"}, 403, 20)
		bobClient.fail("auth.create_credentials", map[string]any{"user": admin}, 403, 20)
	})
}
