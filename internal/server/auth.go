package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/store"
)

// Extensions are the capabilities of this server beyond the reference API.
// They are advertised in the login token (claim "extensions") and in
// server.info, so that our agent uses them only where the server has them.
var Extensions = []string{"long_poll", "impersonation", "lease", "task_wait"}

// tokenClaims are the JWT claims the clients read (spec 1.6).
type tokenClaims struct {
	Identity  api.Identity `json:"identity"`
	AuthType  string       `json:"auth_type"`
	Iat       int64        `json:"iat"`
	Exp       int64        `json:"exp"`
	SessionID string       `json:"session_id"`
	// Jti identifies this token; SessionID the login it descends from,
	// which auth.logout ends for all its tokens (as the reference does).
	Jti string `json:"jti,omitempty"`
	// SessionExp (epoch seconds) is when the session ends: a token renewed
	// from a token expires no later (see sessionExpiry).
	SessionExp    int64    `json:"session_exp,omitempty"`
	Env           string   `json:"env"`
	APIVersion    string   `json:"api_version"`
	ServerVersion string   `json:"server_version"`
	ServerBuild   string   `json:"server_build"`
	FeatureSet    string   `json:"feature_set"`
	Extensions    []string `json:"extensions,omitempty"`
}

// tokenSigner issues and verifies HS256 JWTs.
type tokenSigner struct{ secret []byte }

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (ts *tokenSigner) sign(c tokenClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	unsigned := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, ts.secret)
	mac.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

func (ts *tokenSigner) verify(token string, now time.Time) (*tokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, api.ErrInvalidToken.New("malformed token")
	}
	mac := hmac.New(sha256.New, ts.secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, api.ErrInvalidToken.New("invalid signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, api.ErrInvalidToken.New("malformed token")
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, api.ErrInvalidToken.New("malformed token")
	}
	if c.Exp != 0 && now.Unix() >= c.Exp {
		return nil, api.ErrInvalidToken.New("token expired")
	}
	return &c, nil
}

type identEntry struct {
	ident  api.Identity
	claims *tokenClaims
}

const tokenSecretKey = "token_secret"

func loadTokenSecret(st store.Store) ([]byte, error) {
	var secret string
	err := st.View(context.Background(), func(tx store.Tx) error {
		var err error
		secret, err = tx.Meta(tokenSecretKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading token secret (was the store bootstrapped?): %w", err)
	}
	return hex.DecodeString(secret)
}

// cookieName is the browser's token cookie.
const cookieName = "clearml_token_basic"

// authenticate resolves the caller's identity from the Authorization header
// (Basic or Bearer) or the browser cookie. claims is the presented token's,
// nil for a key pair.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (ident api.Identity, claims *tokenClaims, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if ck, err := r.Cookie(cookieName); err == nil && ck.Value != "" {
			h = "Bearer " + ck.Value
		}
	}
	if h == "" {
		return api.Identity{}, nil, api.ErrNoCredentials.New("")
	}
	scheme, value, _ := strings.Cut(h, " ")
	value = strings.TrimSpace(value)
	switch strings.ToLower(scheme) {
	case "bearer":
		claims, err := s.claimsOf(ctx, value)
		if err != nil {
			return api.Identity{}, nil, err
		}
		return claims.Identity, claims, nil
	case "basic":
		ident, err := s.identFromBasic(ctx, value)
		return ident, nil, err
	default:
		return api.Identity{}, nil, api.ErrBadAuthType.New("")
	}
}

// claimsOf verifies a token (once; then from a cache) and checks that its
// session has not been ended by auth.logout.
func (s *Server) claimsOf(ctx context.Context, token string) (*tokenClaims, error) {
	now := s.opts.Now()
	s.identMu.Lock()
	e, ok := s.idents[token]
	s.identMu.Unlock()
	c := e.claims
	if !ok || (c.Exp != 0 && now.Unix() >= c.Exp) {
		var err error
		if c, err = s.tokens.verify(token, now); err != nil {
			return nil, err
		}
		s.identMu.Lock()
		if len(s.idents) > 10000 {
			clear(s.idents)
		}
		s.idents[token] = identEntry{ident: c.Identity, claims: c}
		s.identMu.Unlock()
	}
	if s.revoked.has(ctx, s, c.sessionKey()) {
		return nil, api.ErrInvalidToken.New("token revoked (logged out)")
	}
	return c, nil
}

func (s *Server) identFromBasic(ctx context.Context, value string) (api.Identity, error) {
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return api.Identity{}, api.ErrBadCredentials.New("")
	}
	key, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return api.Identity{}, api.ErrBadCredentials.New("")
	}
	var ident api.Identity
	err = s.store.View(ctx, func(tx store.Tx) error {
		userID, hash, err := tx.Credential(key)
		if errors.Is(err, store.ErrNotFound) {
			return api.ErrInvalidCredentials.New("")
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hash)) != 1 {
			return api.ErrInvalidCredentials.New("")
		}
		u, err := tx.User(userID)
		if err != nil {
			return fmt.Errorf("reading user of credentials: %w", err)
		}
		ident = identityOf(u)
		return nil
	})
	return ident, err
}

func identityOf(u *api.User) api.Identity {
	return api.Identity{User: u.ID, Company: u.Company, Role: u.Role, UserName: u.Name, CompanyName: "clearml"}
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func authLogin(s *Server, c *call) (any, error) {
	var req api.LoginRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	ttl := s.opts.TokenTTL
	if req.ExpirationSec != nil {
		// Compare in seconds: a huge value times time.Second overflows.
		if *req.ExpirationSec <= 0 || *req.ExpirationSec > int64(s.opts.MaxTokenTTL/time.Second) {
			return nil, api.ErrValidation.New(fmt.Sprintf("expiration_sec must be between 1 and %d", int64(s.opts.MaxTokenTTL/time.Second)))
		}
		ttl = time.Duration(*req.ExpirationSec) * time.Second
	}
	ident := c.ident
	impersonated := false
	if target := headerValue(c.header, "X-Clearml-Impersonate-As"); target != "" {
		var err error
		if ident, err = s.impersonate(c, target); err != nil {
			return nil, err
		}
		impersonated = true
	}
	now := s.opts.Now()
	exp := now.Add(ttl).Unix()
	sessionID, sessionExp := newID(), exp
	if c.claims != nil {
		// A renewal: the new token belongs to the presented token's session
		// and ends with it, so that a token (a stolen one, say) cannot be
		// renewed forever; a client with a key pair logs in again with it.
		sessionExp = c.claims.sessionExpiry()
		exp = min(exp, sessionExp)
		if !impersonated {
			sessionID = c.claims.sessionKey()
		}
	}
	token, err := s.tokens.sign(tokenClaims{
		Identity:      ident,
		AuthType:      "Bearer",
		Iat:           now.Unix(),
		Exp:           exp,
		SessionID:     sessionID,
		Jti:           newID(),
		SessionExp:    sessionExp,
		Env:           "<unknown>",
		APIVersion:    api.MaxVersion,
		ServerVersion: api.ServerVersion,
		ServerBuild:   "goclearml",
		FeatureSet:    "basic",
		Extensions:    Extensions,
	})
	if err != nil {
		return nil, err
	}
	return api.LoginResponse{Token: token}, nil
}

// impersonationRoles may log in as another user (the agent's
// --use-owner-token runs each task with its owner's identity).
var impersonationRoles = []string{"admin", "root", "system"}

// impersonate returns the identity of user target for an auth.login that
// carries X-Clearml-Impersonate-As, as the reference server does: only an
// admin (or system) caller may, and not together with Act-As.
func (s *Server) impersonate(c *call, target string) (api.Identity, error) {
	if headerValue(c.header, "X-Clearml-Act-As") != "" {
		return api.Identity{}, api.ErrInvalidHeaders.New("Impersonate-As and Act-As cannot be used together")
	}
	if !slices.Contains(impersonationRoles, c.ident.Role) {
		return api.Identity{}, api.ErrImpersonation.New("only an admin may act as another user", "role", c.ident.Role)
	}
	var u *api.User
	err := s.store.View(c.ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.User(target)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Company != c.ident.Company) {
		return api.Identity{}, api.ErrInvalidUserID.New("", "id", target)
	}
	if err != nil {
		return api.Identity{}, err
	}
	return identityOf(u), nil
}

func headerValue(h map[string][]string, name string) string {
	return http.Header(h).Get(name)
}

// Credentials are an access key and its secret.
type Credentials struct {
	AccessKey string
	SecretKey string
}

const adminUserName = "admin"

// randomKey returns n characters from alphabet, uniformly.
func randomKey(n int, alphabet string) string {
	b := make([]byte, n)
	buf := make([]byte, n*2)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			panic(err)
		}
		for _, x := range buf {
			if int(x) < 256-256%len(alphabet) && i < n {
				b[i] = alphabet[int(x)%len(alphabet)]
				i++
			}
		}
	}
	return string(b)
}

// Bootstrap prepares a store for serving: the token secret, the admin user,
// and the default queue. It is idempotent and safe to run from several
// replicas at once.
func Bootstrap(ctx context.Context, st store.Store) error {
	return st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Meta(tokenSecretKey); errors.Is(err, store.ErrNotFound) {
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			if err := tx.SetMeta(tokenSecretKey, hex.EncodeToString(secret)); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		users, err := tx.Users(api.DefaultCompany)
		if err != nil {
			return err
		}
		if len(users) == 0 {
			now := api.Now()
			if err := tx.PutUser(&api.User{ID: newID(), Name: adminUserName, Role: "admin", Company: api.DefaultCompany, Created: &now}); err != nil {
				return err
			}
		}
		queues, err := tx.Queues(api.DefaultCompany)
		if err != nil {
			return err
		}
		if len(queues) == 0 {
			now := api.Now()
			_, err := tx.InsertQueue(&api.Queue{ID: newID(), Name: "default", Company: api.DefaultCompany,
				Created: &now, LastUpdate: &now, Tags: []string{}, SystemTags: []string{"default"}})
			return err
		}
		return nil
	})
}

// CreateCredentials makes a new key pair for the admin user (or the named
// user) and returns it; only its hash is stored.
func CreateCredentials(ctx context.Context, st store.Store, userName string) (Credentials, error) {
	if userName == "" {
		userName = adminUserName
	}
	cr := Credentials{
		AccessKey: randomKey(24, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
		SecretKey: randomKey(48, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
	}
	err := st.Update(ctx, func(tx store.Tx) error {
		users, err := tx.Users(api.DefaultCompany)
		if err != nil {
			return err
		}
		for _, u := range users {
			if u.Name == userName {
				return tx.PutCredential(cr.AccessKey, hashSecret(cr.SecretKey), u.ID)
			}
		}
		now := api.Now()
		u := &api.User{ID: newID(), Name: userName, Role: "user", Company: api.DefaultCompany, Created: &now}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutCredential(cr.AccessKey, hashSecret(cr.SecretKey), u.ID)
	})
	return cr, err
}

// authCreateUser adds a user (admin only). The reference server reserves
// auth.create_user to system roles; ours lets the admin of the embedded
// server manage its users.
func authCreateUser(s *Server, c *call) (any, error) {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if !slices.Contains(impersonationRoles, c.ident.Role) {
		return nil, api.ErrRoleNotAllowed.New("only an admin may create users", "role", c.ident.Role)
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		return nil, api.ErrMissingRequiredFields.New("", "field", "name")
	}
	if req.Role == "" {
		req.Role = "user"
	}
	if !slices.Contains([]string{"user", "admin", "guest"}, req.Role) {
		return nil, api.ErrValidation.New("role must be user, admin or guest", "role", req.Role)
	}
	now := s.now()
	u := &api.User{ID: newID(), Name: req.Name, Role: req.Role, Company: c.ident.Company, Created: &now}
	err := s.store.Update(c.ctx, func(tx store.Tx) error { return tx.PutUser(u) })
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": u.ID}, nil
}

// authCreateCredentials makes a key pair for the caller, or (admin only)
// for the user named by "user". The secret is returned once and only its
// hash is stored.
func authCreateCredentials(s *Server, c *call) (any, error) {
	var req struct {
		User string `json:"user"`
	}
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	userID := c.ident.User
	if req.User != "" && req.User != userID {
		if !slices.Contains(impersonationRoles, c.ident.Role) {
			return nil, api.ErrRoleNotAllowed.New("only an admin may create credentials for another user", "role", c.ident.Role)
		}
		userID = req.User
	}
	cr := Credentials{
		AccessKey: randomKey(24, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
		SecretKey: randomKey(48, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
	}
	err := s.store.Update(c.ctx, func(tx store.Tx) error {
		u, err := tx.User(userID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Company != c.ident.Company) {
			return api.ErrInvalidUserID.New("", "id", userID)
		}
		if err != nil {
			return err
		}
		return tx.PutCredential(cr.AccessKey, hashSecret(cr.SecretKey), u.ID)
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"credentials": map[string]any{"access_key": cr.AccessKey, "secret_key": cr.SecretKey}}, nil
}
