package server_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// A web page on another origin cannot make the browser send the server a
// "simple" request (one without a CORS preflight: text/plain, a form, no
// content type), with or without the user's cookie: before, a text/plain
// body with an Origin header was served, so any page a user visited could
// reach 127.0.0.1:8008. Clients that are not browsers send no Origin and
// are served as before; preflighted JSON requests keep CORS.
func TestCrossOriginSimpleRequestsRefused(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		before := stateSnapshot(c.client)
		send := func(method, path, contentType, body string, hdr map[string]string) (int, string) {
			req, _ := http.NewRequest(method, c.ts.URL+path, strings.NewReader(body))
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(raw)
		}
		evil := map[string]string{"Origin": "http://evil.example"}
		cookie := map[string]string{"Origin": "http://evil.example", "Cookie": "clearml_token_basic=" + c.token}
		bearer := map[string]string{"Origin": "http://evil.example", "Authorization": "Bearer " + c.token}
		create := `{"name": "planted by a web page", "type": "training"}`
		for _, tc := range []struct {
			name                   string
			method, path, ct, body string
			hdr                    map[string]string
		}{
			{"text/plain with the cookie", "POST", "/tasks.create", "text/plain", create, cookie},
			{"text/plain with a token", "POST", "/tasks.create", "text/plain;charset=UTF-8", create, bearer},
			{"a form", "POST", "/tasks.create", "application/x-www-form-urlencoded", "name=x&type=training", cookie},
			{"no content type", "POST", "/tasks.create", "", create, cookie},
			{"unauthenticated text/plain", "POST", "/debug.ping", "text/plain", strings.Repeat("{}", 1000), evil},
			{"a GET from an img tag", "GET", "/tasks.create?name=img&type=training", "", "",
				map[string]string{"Cookie": "clearml_token_basic=" + c.token, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}},
			{"same-site no-cors", "GET", "/tasks.create?name=img2&type=training", "", "",
				map[string]string{"Cookie": "clearml_token_basic=" + c.token, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}},
		} {
			if code, body := send(tc.method, tc.path, tc.ct, tc.body, tc.hdr); code != http.StatusForbidden {
				t.Errorf("%s: %d %s, want 403", tc.name, code, body)
			}
		}
		// A form upload to the file server from another origin.
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		w, _ := mw.CreateFormFile("/planted.txt", "/planted.txt")
		w.Write([]byte("x"))
		mw.Close()
		if code, body := send("POST", "/files/", mw.FormDataContentType(), mp.String(), cookie); code != http.StatusForbidden {
			t.Errorf("cross-origin form upload: %d %s, want 403", code, body)
		}
		if after := stateSnapshot(c.client); fmtJSON(before) != fmtJSON(after) {
			t.Errorf("a refused request changed the state")
		}
		// Served: no Origin (the SDK, the agent), the same origin, a
		// preflighted JSON request.
		for _, hdr := range []map[string]string{
			{"Authorization": "Bearer " + c.token},
			{"Authorization": "Bearer " + c.token, "Origin": c.ts.URL},
			{"Authorization": "Bearer " + c.token, "Origin": "http://ui.example", "Content-Type": "application/json"},
		} {
			if code, body := send("POST", "/tasks.get_all", "application/json", `{}`, hdr); code != 200 {
				t.Errorf("%v: %d %s", hdr, code, body)
			}
		}
	})
}

func fmtJSON(v any) string { return mustJSON(v) }
