package webui

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// Sessions. Signing in with an access key and secret is an auth.login
// call; the token it returns is the session, kept in an HttpOnly cookie of
// the UI's own (the API never reads it, so a page of another site cannot
// make the browser call the API with it). Every request then proves the
// session with users.get_current_user, so a logout (auth.logout, which
// ends the session on every replica) or an expired token ends it here too.
// Scripts may instead send HTTP Basic (the key pair) or a Bearer token on
// every request.
//
// Every action is a POST that carries a CSRF token: a hash of the
// session's credentials, shown in each page, which another site can
// neither read nor compute.

const (
	sessionCookie = "clearml_ui_session"
	sessionTTL    = 7 * 24 * time.Hour
	csrfHeader    = "X-CSRF-Token"
)

// session is a signed-in request.
type session struct {
	ui *UI
	// auth is the Authorization header value of the user's API calls.
	auth string
	User userInfo
	CSRF string
}

type userInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// CanAct is false for a guest: the UI shows no actions (the API would
// refuse them anyway).
func (s *session) CanAct() bool { return s.User.Role != "guest" }

var errNoSession = errors.New("not signed in")

func csrfToken(auth string) string {
	sum := sha256.Sum256([]byte("clearml-ui-csrf\x00" + auth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// session resolves the request's credentials.
func (u *UI) session(w http.ResponseWriter, r *http.Request) (*session, error) {
	auth := ""
	h := r.Header.Get("Authorization")
	scheme, _, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic", "bearer":
		auth = h
	case "":
		if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
			auth = "Bearer " + ck.Value
		}
	}
	if auth == "" {
		return nil, errNoSession
	}
	var resp struct {
		User userInfo `json:"user"`
	}
	if err := u.call(r.Context(), auth, "users.get_current_user", nil, &resp); err != nil {
		if h == "" {
			u.clearCookie(w)
		}
		return nil, err
	}
	return &session{ui: u, auth: auth, User: resp.User, CSRF: csrfToken(auth)}, nil
}

// wantsJSON tells the UI's own fetches (and scripts) from page loads.
func wantsJSON(r *http.Request) bool {
	return r.Header.Get("X-Requested-With") != "" || strings.Contains(r.Header.Get("Accept"), "application/json") ||
		strings.Contains(r.Header.Get("Accept"), "text/event-stream") || r.Method == http.MethodPost
}

// unauthenticated answers a request without a valid session: pages go to
// the sign-in page, fetches and scripts get 401.
func (u *UI) unauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	if !wantsJSON(r) && r.Header.Get("Authorization") == "" {
		next := r.URL.RequestURI()
		http.Redirect(w, r, u.path("/login")+"?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	msg := "sign in first: an access key and secret (HTTP Basic), or the session cookie of the sign-in page"
	if err != errNoSession {
		msg = message(err)
	}
	if r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="ClearML"`)
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": msg})
}

// sameOrigin refuses requests another site's page made the browser send.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = strings.TrimSpace(strings.Split(fh, ",")[0])
	}
	return o.Host == host
}

// checkCSRF verifies an action's token (header or form field) and origin.
func (u *UI) checkCSRF(r *http.Request, s *session) error {
	if !sameOrigin(r) {
		return errors.New("refused: the request came from another site")
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
		return errors.New("refused: missing or wrong CSRF token (reload the page)")
	}
	return nil
}

func (u *UI) cookie(value string, maxAge int, r *http.Request) *http.Cookie {
	secure := r != nil && (r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https")
	return &http.Cookie{Name: sessionCookie, Value: value, Path: u.path("/"), MaxAge: maxAge, HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteLaxMode}
}

func (u *UI) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, u.cookie("", -1, nil))
}

// safeNext keeps a post-sign-in redirect on the UI.
func (u *UI) safeNext(next string) string {
	if !strings.HasPrefix(next, u.path("/")) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return u.path("/")
	}
	return next
}

// login shows the sign-in form and signs in with a key pair.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	next := u.safeNext(r.FormValue("next"))
	data := map[string]any{"Next": next}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !sameOrigin(r) {
			u.render(w, r, nil, http.StatusForbidden, "login", "Sign in", map[string]any{"Next": next,
				"Error": "refused: the request came from another site"})
			return
		}
		key, secret := strings.TrimSpace(r.PostFormValue("access_key")), strings.TrimSpace(r.PostFormValue("secret_key"))
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret))
		var resp api.LoginResponse
		err := u.call(r.Context(), basic, "auth.login", map[string]any{"expiration_sec": int(sessionTTL / time.Second)}, &resp)
		if err == nil {
			http.SetCookie(w, u.cookie(resp.Token, int(sessionTTL/time.Second), r))
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		data["Error"], data["AccessKey"] = "Sign-in failed: "+message(err), key
		u.render(w, r, nil, http.StatusUnauthorized, "login", "Sign in", data)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	u.render(w, r, nil, http.StatusOK, "login", "Sign in", data)
}

// logout ends the session (on every replica) and clears the cookie.
func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := s.call(r.Context(), "auth.logout", nil, nil); err != nil {
		u.cfg.Log.Warn("web UI: ending a session", "err", err)
	}
	u.clearCookie(w)
	http.Redirect(w, r, u.path("/login"), http.StatusSeeOther)
}
