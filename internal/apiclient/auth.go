package apiclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
)

// Claims are what the login token says about the server and the caller. The
// token is decoded WITHOUT verifying its signature, as the upstream clients
// do: the client cannot know the server's secret, and the claims only steer
// feature use.
type Claims struct {
	// APIVersion is the server's newest API version. A token without the
	// claim means 2.1 (2.2 when env is "prod"), as upstream assumes.
	APIVersion    string
	ServerVersion string
	// FeatureSet is "basic" on the open-source server.
	FeatureSet string
	// Extensions are capabilities beyond the reference API, e.g. "long_poll".
	Extensions []string
	// User, Company and Role come from the token's identity.
	User, Company, Role string
	// Exp is the expiry; zero when the token has none.
	Exp time.Time
}

// tokenPayload is the part of the JWT payload we read.
type tokenPayload struct {
	Identity struct {
		User    string `json:"user"`
		Company string `json:"company"`
		Role    string `json:"role"`
	} `json:"identity"`
	Iat           float64  `json:"iat"`
	Exp           float64  `json:"exp"`
	Env           string   `json:"env"`
	APIVersion    string   `json:"api_version"`
	ServerVersion string   `json:"server_version"`
	FeatureSet    string   `json:"feature_set"`
	Extensions    []string `json:"extensions"`
}

// decodeToken reads a JWT's claims without verifying it. iat is zero when
// the token has no issue time.
func decodeToken(token string) (Claims, time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, time.Time{}, errors.New("token is not a JWT (want three dot-separated parts)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, time.Time{}, fmt.Errorf("decoding token payload: %w", err)
	}
	var p tokenPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return Claims{}, time.Time{}, fmt.Errorf("decoding token payload: %w", err)
	}
	cl := Claims{APIVersion: p.APIVersion, ServerVersion: p.ServerVersion, FeatureSet: p.FeatureSet,
		Extensions: p.Extensions, User: p.Identity.User, Company: p.Identity.Company, Role: p.Identity.Role}
	if cl.APIVersion == "" {
		cl.APIVersion = "2.1"
		if p.Env == "prod" {
			cl.APIVersion = "2.2"
		}
	}
	if p.Exp > 0 {
		cl.Exp = time.Unix(int64(p.Exp), 0)
	}
	var iat time.Time
	if p.Iat > 0 {
		iat = time.Unix(int64(p.Iat), 0)
	}
	return cl, iat, nil
}

// Claims returns what the current token says (zero before the first login).
func (c *Client) Claims() Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.claims
	cl.Extensions = slices.Clone(cl.Extensions)
	return cl
}

// HasExtension reports whether the server advertises an extension, e.g.
// "long_poll". The reference server advertises none.
func (c *Client) HasExtension(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.claims.Extensions, name)
}

// AtLeastVersion reports whether the server's API version is at least v
// ("2.14"), like upstream's check_min_api_version.
func (c *Client) AtLeastVersion(v string) bool {
	c.mu.Lock()
	have := c.claims.APIVersion
	c.mu.Unlock()
	hm, hn, ok1 := api.ParseVersion(have)
	wm, wn, ok2 := api.ParseVersion(v)
	return ok1 && ok2 && (hm > wm || (hm == wm && hn >= wn))
}

// setTokenLocked stores a token. c.mu must be held (or c not yet shared).
//
// For a token just issued (fresh), timing is computed in local time from
// the token's own lifetime (exp-iat), so that a skewed server clock neither
// expires tokens early nor late.
//
// Refresh: when less than RefreshThreshold (12 h) is left, as upstream. A
// token that lives shorter than the threshold is refreshed when half of its
// lifetime is left instead; upstream would log in before every call then.
func (c *Client) setTokenLocked(token string, cl Claims, iat time.Time, fresh bool) {
	c.token, c.claims = token, cl
	c.refreshAt, c.expiresAt = time.Time{}, time.Time{}
	if cl.Exp.IsZero() {
		return
	}
	now := c.now()
	left := cl.Exp.Sub(now)
	lifetime := left
	if !iat.IsZero() && cl.Exp.After(iat) {
		lifetime = cl.Exp.Sub(iat)
		if fresh {
			left = lifetime // issued just now, whatever the server's clock says
		}
	}
	if left <= 0 {
		// Expired by its own account (a stale configured token): refresh at once.
		c.refreshAt, c.expiresAt = now, now
		return
	}
	threshold := c.cfg.RefreshThreshold
	if lifetime <= threshold {
		threshold = lifetime / 2
	}
	c.expiresAt = now.Add(left)
	c.refreshAt = c.expiresAt.Add(-threshold)
}

// loginFlight is one login in progress; others wait on done and share err.
type loginFlight struct {
	done chan struct{}
	err  error
}

// Login gets a new token from auth.login and stores it with its claims. It
// retries transient failures a few times (like upstream's initial connect
// retries) and returns a *LoginError, or ctx's error.
func (c *Client) Login(ctx context.Context) error {
	return c.LoginWith(ctx, LoginPolicy)
}

// LoginPolicy is Login's retry budget.
var LoginPolicy = Policy{MaxAttempts: 4, MaxElapsed: time.Minute, InitialBackoff: time.Second, MaxBackoff: 8 * time.Second}

// LoginWith is Login under another retry budget (a command-line tool
// gives up sooner than a daemon).
func (c *Client) LoginWith(ctx context.Context, p Policy) error {
	err := c.retry(ctx, "auth.login", p, func(ctx context.Context) error {
		return c.relogin(ctx, c.Token(), true)
	})
	if err != nil {
		return err
	}
	cl := c.Claims()
	c.log.Info("logged in to API server", "server", c.base, "api_version", cl.APIVersion,
		"server_version", cl.ServerVersion, "feature_set", cl.FeatureSet, "extensions", cl.Extensions)
	return nil
}

// relogin logs in once, single-flight. stale is the token the caller saw:
// when the current token differs, someone else already refreshed it and
// there is nothing to do, unless force is set (explicit Login).
func (c *Client) relogin(ctx context.Context, stale string, force bool) error {
	for {
		c.mu.Lock()
		if !force && c.token != stale && c.token != "" {
			c.mu.Unlock()
			return nil
		}
		if f := c.flight; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue // the leader's context ended, not ours: try ourselves
			}
			return f.err
		}
		f := &loginFlight{done: make(chan struct{})}
		c.flight = f
		current := c.token
		c.mu.Unlock()

		token, cl, iat, err := c.fetchToken(ctx, current)
		c.mu.Lock()
		if err == nil {
			c.setTokenLocked(token, cl, iat, true)
		}
		c.flight, f.err = nil, err
		c.mu.Unlock()
		close(f.done)
		if err == nil {
			c.log.Debug("got a new token", "server", c.base, "expires", cl.Exp)
		}
		return err
	}
}

// fetchToken sends one auth.login. In token mode it presents the current
// token as Bearer; if the server refuses that, or renews it without
// extending its life (our server ends a renewed token with the login it
// came from), and a key pair is configured, it logs in with the key pair.
func (c *Client) fetchToken(ctx context.Context, current string) (string, Claims, time.Time, error) {
	bearer := c.cfg.Token != "" && current != ""
	haveKeys := c.cfg.AccessKey != "" && c.cfg.SecretKey != ""
	token, err := c.loginOnce(ctx, bearer, current)
	if bearer && IsUnauthorized(err) && haveKeys {
		c.log.Warn("token refused by auth.login; logging in with the access key", "server", c.base)
		token, err = c.loginOnce(ctx, false, "")
	}
	if err != nil {
		return "", Claims{}, time.Time{}, err
	}
	cl, iat, err := c.readToken(token)
	if err != nil {
		return "", Claims{}, time.Time{}, err
	}
	if bearer && haveKeys && !extends(cl, current) {
		c.log.Info("token renewal did not extend its life; logging in with the access key", "server", c.base, "expires", cl.Exp)
		if token, err = c.loginOnce(ctx, false, ""); err != nil {
			return "", Claims{}, time.Time{}, err
		}
		if cl, iat, err = c.readToken(token); err != nil {
			return "", Claims{}, time.Time{}, err
		}
	}
	return token, cl, iat, nil
}

// extends reports whether a renewed token (claims cl) lives longer than
// the one it replaces; tokens without an expiry count as extending.
func extends(cl Claims, previous string) bool {
	old, _, err := decodeToken(previous)
	return err != nil || cl.Exp.IsZero() || old.Exp.IsZero() || cl.Exp.After(old.Exp)
}

// readToken decodes a token auth.login returned.
func (c *Client) readToken(token string) (Claims, time.Time, error) {
	cl, iat, err := decodeToken(token)
	if err != nil {
		return Claims{}, time.Time{}, &LoginError{Server: c.base, Msg: fmt.Sprintf(
			"it seems *api_server* is misconfigured: auth.login at %s returned an unreadable token: %v", c.base, err)}
	}
	return cl, iat, nil
}

func (c *Client) loginOnce(ctx context.Context, bearer bool, current string) (string, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, c.base+"/auth.login", nil)
	if err != nil {
		return "", fmt.Errorf("building auth.login request: %w", err)
	}
	auth := ""
	if bearer {
		auth = "Bearer " + current
	} else {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.cfg.AccessKey+":"+c.cfg.SecretKey))
	}
	c.setHeaders(req.Header, auth)
	status, body, _, err := c.roundTrip(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		return "", &LoginError{Server: c.base, Err: err}
	}
	data, err := decodeEnvelope(status, body)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return "", &LoginError{Server: c.base, Code: ae.Code, Msg: ae.Msg, Err: err}
		}
		return "", &LoginError{Server: c.base, Msg: fmt.Sprintf(
			"it seems *api_server* is misconfigured. Is this the ClearML API server %s? (%v)", c.base, err), Err: err}
	}
	var lr api.LoginResponse
	if err := json.Unmarshal(data, &lr); err != nil || lr.Token == "" {
		return "", &LoginError{Server: c.base, Msg: fmt.Sprintf(
			"it seems *api_server* is misconfigured. Is this the ClearML API server %s? (auth.login returned no token)", c.base)}
	}
	return lr.Token, nil
}

// currentToken returns a token to send, logging in first when there is none
// or when it is due for refresh. A failed proactive refresh is logged and
// the old token used while it is still valid.
func (c *Client) currentToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok, refreshAt, expiresAt := c.token, c.refreshAt, c.expiresAt
	c.mu.Unlock()
	now := c.now()
	if tok != "" && (refreshAt.IsZero() || now.Before(refreshAt)) {
		return tok, nil
	}
	if err := c.relogin(ctx, tok, false); err != nil {
		if tok != "" && ctx.Err() == nil && (expiresAt.IsZero() || now.Before(expiresAt)) {
			c.log.Warn("refreshing the API token failed; using the current one until it expires",
				"server", c.base, "expires", expiresAt, "err", err)
			return tok, nil
		}
		return "", err
	}
	return c.Token(), nil
}
