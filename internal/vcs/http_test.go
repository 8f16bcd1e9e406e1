package vcs

import (
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gitServer serves a bare copy of a fixture over smart HTTP with basic
// auth, through git http-backend run as a CGI program.
type gitServer struct {
	*httptest.Server
	requests atomic.Int64
	url      string // repository URL without credentials
}

func newGitServer(t *testing.T, f *fixture, user, pass string) *gitServer {
	t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend is not installed (%v); skipping the HTTP tests", err)
	}
	root := t.TempDir()
	git(t, root, "clone", "--quiet", "--bare", f.upstream, filepath.Join(root, "repo.git"))
	h := &cgi.Handler{
		Path:       backend,
		Env:        []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=" + os.DevNull},
		InheritEnv: []string{"PATH"},
	}
	s := &gitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.url = s.Server.URL + "/repo.git"
	return s
}

// assertNoSecret fails when secret appears in any of the places a
// credential must never reach.
func assertNoSecret(t *testing.T, secret string, places map[string]string) {
	t.Helper()
	for name, text := range places {
		if strings.Contains(text, secret) {
			t.Errorf("the password appears in %s:\n%s", name, text)
		}
	}
}

func mirrorConfigs(t *testing.T, cache string) string {
	t.Helper()
	var all strings.Builder
	matches, _ := filepath.Glob(filepath.Join(cache, "*.git", "config"))
	if len(matches) == 0 {
		t.Fatalf("no mirror in %s", cache)
	}
	for _, m := range matches {
		all.WriteString(readFile(t, m))
		all.WriteString(git(t, filepath.Dir(m), "config", "--get", "remote.origin.url"))
	}
	return all.String()
}

func TestHTTPCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const user, pass = "alice", "s3cr3t-Pa55word"
	srv := newGitServer(t, f, user, pass)

	t.Run("configured credentials", func(t *testing.T) {
		t.Parallel()
		cache := t.TempDir()
		o, log, argv := testOptions(t, cache)
		o.Credentials = Credentials{User: user, Password: pass}
		dir := filepath.Join(t.TempDir(), "code")
		res, err := Checkout(testContext(t), o, Source{Repository: srv.url, Branch: "feature"}, dir)
		if err != nil {
			t.Fatalf("Checkout: %v\n%s", err, log)
		}
		if res.Commit != f.c3 || res.URL != srv.url {
			t.Errorf("result %+v", res)
		}
		assertNoSecret(t, pass, map[string]string{
			"the log":               log.String(),
			"the git argv":          readFile(t, argv),
			"the mirror config":     mirrorConfigs(t, cache),
			"the checkout's config": readFile(t, filepath.Join(dir, ".git", "config")),
		})
		if helpers, _ := filepath.Glob(filepath.Join(cache, ".git-askpass-*")); len(helpers) != 0 {
			t.Errorf("askpass helper left behind: %v", helpers)
		}
	})
	t.Run("credentials in the URL", func(t *testing.T) {
		t.Parallel()
		cache := t.TempDir()
		o, log, argv := testOptions(t, cache)
		u, _ := url.Parse(srv.url)
		u.User = url.UserPassword(user, pass)
		dir := filepath.Join(t.TempDir(), "code")
		res, err := Checkout(testContext(t), o, Source{Repository: u.String(), Tag: "v1.0"}, dir)
		if err != nil {
			t.Fatalf("Checkout: %v\n%s", err, log)
		}
		if res.Commit != f.c1 || res.URL != srv.url {
			t.Errorf("result %+v", res)
		}
		assertNoSecret(t, pass, map[string]string{
			"the log": log.String(), "the git argv": readFile(t, argv), "the mirror config": mirrorConfigs(t, cache),
			"the checkout's config": readFile(t, filepath.Join(dir, ".git", "config")), "the result": res.URL,
		})
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		cache := t.TempDir()
		o, log, argv := testOptions(t, cache)
		const wrong = "wr0ng-Pa55word"
		o.Credentials = Credentials{User: user, Password: wrong}
		dir := filepath.Join(t.TempDir(), "code")
		_, err := Checkout(testContext(t), o, Source{Repository: srv.url}, dir)
		e := asError(t, err)
		want := "could not clone " + srv.url + ": authentication failed: check agent.git_user / agent.git_pass"
		if e.Kind != KindAuth || !strings.HasPrefix(e.Reason, want) {
			t.Errorf("reason %q (kind %s), want prefix %q", e.Reason, e.Kind, want)
		}
		assertNoSecret(t, wrong, map[string]string{
			"the error": err.Error(), "the wrapped error": e.Err.Error(), "the log": log.String(),
			"the git argv": readFile(t, argv),
		})
		if !isEmptyOrAbsent(dir) {
			t.Errorf("%s left behind", dir)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		t.Parallel()
		o, _, _ := testOptions(t, t.TempDir())
		done := make(chan error, 1)
		go func() {
			_, err := Checkout(testContext(t), o, Source{Repository: srv.url}, filepath.Join(t.TempDir(), "code"))
			done <- err
		}()
		select {
		case err := <-done:
			if e := asError(t, err); e.Kind != KindAuth {
				t.Errorf("kind %s: %s", e.Kind, e.Reason)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("git waited for a prompt")
		}
	})
	t.Run("credentials for another host", func(t *testing.T) {
		t.Parallel()
		o, _, _ := testOptions(t, t.TempDir())
		o.Credentials = Credentials{User: user, Password: pass, Host: "git.example.com"}
		_, err := Checkout(testContext(t), o, Source{Repository: srv.url}, filepath.Join(t.TempDir(), "code"))
		if e := asError(t, err); e.Kind != KindAuth {
			t.Errorf("kind %s: %s", e.Kind, e.Reason)
		}
	})
}

// The second checkout of a pinned commit comes from the cache: it makes
// no request to the server. (How much faster that is belongs in a
// benchmark, not in a timed test.)
func TestCacheHitNeedsNoServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newGitServer(t, f, "bob", "hunter2hunter2")
	cache := t.TempDir()
	o, log, _ := testOptions(t, cache)
	o.Credentials = Credentials{User: "bob", Password: "hunter2hunter2"}
	src := Source{Repository: srv.url, Commit: f.c4}
	first, err := Checkout(testContext(t), o, src, filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatalf("first: %v\n%s", err, log)
	}
	before := srv.requests.Load()
	second, err := Checkout(testContext(t), o, src, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatalf("second: %v\n%s", err, log)
	}
	if first.CacheHit || !second.CacheHit {
		t.Errorf("cache hits: first %v, second %v", first.CacheHit, second.CacheHit)
	}
	if n := srv.requests.Load() - before; n != 0 {
		t.Errorf("the second checkout of a pinned commit made %d requests, want 0", n)
	}
	t.Logf("first checkout %v (clone), second %v (cache hit)", first.Duration, second.Duration)
}
