package vcs

import (
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/testwait"
)

func TestParseRepository(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want, user, pass string
	}{
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git", "", ""},
		{"https://alice:p%40ss@GitHub.com/org/repo.git", "https://github.com/org/repo.git", "alice", "p@ss"},
		{"https://TOKEN@gitlab.example.com:8443/g/sub/repo", "https://gitlab.example.com:8443/g/sub/repo", "TOKEN", ""},
		{"http://host/x.git", "http://host/x.git", "", ""},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git", "", ""},
		{"github.com:org/repo.git", "github.com:org/repo.git", "", ""},
		{"ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git", "", ""},
		{"ssh://git:secret@github.com:2222/org/repo.git", "ssh://git@github.com:2222/org/repo.git", "", ""},
		{"git+ssh://git@host/org/repo.git", "ssh://git@host/org/repo.git", "", ""},
		{"git://host/org/repo.git", "git://host/org/repo.git", "", ""},
		{"/srv/git/repo.git", "/srv/git/repo.git", "", ""},
		{"file:///srv/git/repo.git/", "/srv/git/repo.git", "", ""},
	}
	for _, tc := range cases {
		u, user, pass, err := parseRepository(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if u.String() != tc.want || user != tc.user || pass != tc.pass {
			t.Errorf("%s: got %q user %q pass %q, want %q %q %q", tc.in, u, user, pass, tc.want, tc.user, tc.pass)
		}
	}
}

func TestTranslation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in     string
		opts   Options
		want   string
		logged bool
	}{
		{"git@github.com:org/repo.git", Options{Credentials: Credentials{User: "u", Password: "p"}}, "https://github.com/org/repo.git", true},
		{"ssh://git@github.com:22/org/repo.git", Options{Credentials: Credentials{User: "u", Password: "p"}}, "https://github.com/org/repo.git", true},
		{"ssh://git@github.com/org/repo.git", Options{ForceHTTPS: true}, "https://github.com/org/repo.git", true},
		{"git@github.com:org/repo.git", Options{}, "git@github.com:org/repo.git", false},
		{"git@github.com:org/repo.git", Options{ForceSSH: true, Credentials: Credentials{User: "u", Password: "p"}}, "git@github.com:org/repo.git", false},
		{"git@github.com:org/repo.git", Options{Credentials: Credentials{User: "u", Password: "p", Host: "gitlab.com"}}, "git@github.com:org/repo.git", false},
		{"https://github.com/org/repo.git", Options{ForceSSH: true}, "ssh://git@github.com/org/repo.git", false},
		{"https://u:p@github.com/org/repo.git", Options{}, "https://github.com/org/repo.git", false},
	}
	for _, tc := range cases {
		log := &testwait.Output{}
		tc.opts.Log = log
		u, _, err := prepare(t.Context(), tc.opts, Source{Repository: tc.in})
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("%s with %+v: %q, want %q", tc.in, tc.opts, u, tc.want)
		}
		if got := strings.Contains(log.String(), "replacing ssh url"); got != tc.logged {
			t.Errorf("%s: logged %v: %q", tc.in, got, log)
		}
		if strings.Contains(log.String(), "p@") || strings.Contains(log.String(), ":p") {
			t.Errorf("credentials in the log: %q", log)
		}
	}
	// URL credentials become the credentials when none are configured.
	_, creds, _ := prepare(t.Context(), Options{}, Source{Repository: "https://u:p@host/x.git"})
	if creds.User != "u" || creds.Password != "p" {
		t.Errorf("credentials from the URL: %+v", creds)
	}
	_, creds, _ = prepare(t.Context(), Options{Credentials: Credentials{User: "cfg", Password: "cfgpw"}}, Source{Repository: "https://u:p@host/x.git"})
	if creds.User != "cfg" {
		t.Errorf("configured credentials must win: %+v", creds)
	}
}

func TestCacheKey(t *testing.T) {
	t.Parallel()
	same := []string{
		"https://github.com/Org/Repo.git", "https://GITHUB.com/Org/Repo", "git@github.com:Org/Repo.git",
		"ssh://git@github.com/Org/Repo.git/", "https://user:pw@github.com:443/Org/Repo.git", "ssh://git@github.com:22/Org/Repo",
	}
	var first string
	for _, s := range same {
		u, _, _, err := parseRepository(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if first == "" {
			first = u.mirrorName()
		}
		if u.mirrorName() != first {
			t.Errorf("%s: mirror %s, want %s (key %s)", s, u.mirrorName(), first, u.cacheKey())
		}
	}
	for _, s := range []string{"https://github.com/Org/Other.git", "https://github.com:8443/Org/Repo.git", "https://github.com/org/repo.git", "/Org/Repo.git"} {
		u, _, _, _ := parseRepository(s)
		if u.mirrorName() == first {
			t.Errorf("%s shares the mirror of github.com/Org/Repo", s)
		}
	}
	if !strings.HasPrefix(first, "Repo-") {
		t.Errorf("mirror name %q", first)
	}
	u, _, _, _ := parseRepository("https://host/a/%2e%2e%2f..%2fetc.git")
	if n := u.name(); strings.Contains(n, "/") || strings.HasPrefix(n, ".") {
		t.Errorf("unsafe mirror name %q", n)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	if got := redactURL("https://u:pw@host/x"); got != "https://***@host/x" {
		t.Errorf("%q", got)
	}
	if got := redactURL("git@host:x"); got != "git@host:x" {
		t.Errorf("%q", got)
	}
}

func TestRedactURLKeepsUser(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://alice:p%40ss@github.com/org/repo.git": "https://alice:********@github.com/org/repo.git",
		"http://someone:S3CRET@127.0.0.1:80/r.git":     "http://someone:********@127.0.0.1:80/r.git",
		"https://ghp_T0KEN@github.com/org/repo":        "https://********@github.com/org/repo",
		"ssh://git:secret@host:2222/org/repo.git":      "ssh://git:********@host:2222/org/repo.git",
		"ssh://git@host/org/repo.git":                  "ssh://git@host/org/repo.git",
		"git@github.com:org/repo.git":                  "git@github.com:org/repo.git",
		"https://github.com/org/repo.git?a=b@c":        "https://github.com/org/repo.git?a=b@c",
		"/srv/git/repo.git":                            "/srv/git/repo.git",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
