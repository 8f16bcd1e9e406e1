package vcs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// repoURL is a parsed repository location. It never holds a password: the
// parser moves credentials found in the URL out into Credentials.
type repoURL struct {
	Scheme string // https, http, ssh, git, file; "scp" for user@host:path
	User   string // kept for ssh only (usually "git")
	Host   string // lower case, without port
	Port   string
	Path   string // for scp: as written after the colon; otherwise starts with '/'
}

var (
	transportRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`) })
	schemeRe    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`) })
	scpRe       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:([^@/:]+)@)?([^@/:]+):(.*)$`) })
)

// parseRepository validates a repository string as found in script.repository
// and returns it without credentials, plus the user and password that were
// embedded in an http(s) URL (empty when none).
func parseRepository(raw string) (u repoURL, user, pass string, err error) {
	bad := func(why string) (repoURL, string, string, error) {
		return repoURL{}, "", "", invalidf("invalid repository %q: %s", redactURL(raw), why)
	}
	switch {
	case raw == "":
		return bad("empty")
	case strings.HasPrefix(raw, "-"):
		return bad("must not start with '-' (it would be read as a git option)")
	case strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("contains control characters")
	case transportRe().MatchString(raw):
		return bad(fmt.Sprintf("the %q transport is not allowed", raw[:strings.Index(raw, "::")+2]))
	}
	if m := schemeRe().FindStringSubmatch(raw); m != nil {
		scheme := strings.ToLower(m[1])
		switch scheme {
		case "git+ssh", "ssh+git":
			scheme = "ssh"
		case "http", "https", "ssh", "git", "file":
		default:
			return bad(fmt.Sprintf("unsupported scheme %q (use https, http, ssh, git or file)", scheme))
		}
		pu, perr := url.Parse(raw)
		if perr != nil {
			return bad("not a valid URL")
		}
		if scheme == "file" {
			if pu.Host != "" && pu.Host != "localhost" {
				return bad("file URLs must name a local path")
			}
			return checkLocal(pu.Path, raw)
		}
		if pu.User != nil {
			if scheme == "http" || scheme == "https" {
				user = pu.User.Username()
				pass, _ = pu.User.Password()
			} else {
				u.User = pu.User.Username() // ssh user name; a password is dropped
			}
		}
		u.Scheme, u.Host, u.Port, u.Path = scheme, strings.ToLower(pu.Hostname()), pu.Port(), pu.Path
		if u.Host == "" {
			return bad("no host name")
		}
		if u.Path == "" || u.Path == "/" {
			return bad("no repository path")
		}
		if strings.HasPrefix(u.Host, "-") || strings.HasPrefix(u.User, "-") {
			return bad("host and user must not start with '-'")
		}
		if pu.RawQuery != "" || pu.Fragment != "" {
			return bad("query strings and fragments are not supported")
		}
		return u, user, pass, nil
	}
	if strings.HasPrefix(raw, "/") {
		return checkLocal(raw, raw)
	}
	if m := scpRe().FindStringSubmatch(raw); m != nil && m[3] != "" {
		u = repoURL{Scheme: "scp", User: m[1], Host: strings.ToLower(m[2]), Path: m[3]}
		if strings.HasPrefix(u.Host, "-") || strings.HasPrefix(u.User, "-") || strings.HasPrefix(u.Path, "-") {
			return bad("host, user and path must not start with '-'")
		}
		return u, "", "", nil
	}
	return bad("not a URL (https://, ssh://, git@host:org/repo.git) or an absolute local path")
}

func checkLocal(p, raw string) (repoURL, string, string, error) {
	if !filepath.IsAbs(p) {
		return repoURL{}, "", "", invalidf("invalid repository %q: local paths must be absolute", raw)
	}
	return repoURL{Scheme: "file", Path: filepath.Clean(p)}, "", "", nil
}

// String returns the URL git is given. It carries no password, ever.
func (u repoURL) String() string {
	switch u.Scheme {
	case "file":
		return u.Path
	case "scp":
		if u.User != "" {
			return u.User + "@" + u.Host + ":" + u.Path
		}
		return u.Host + ":" + u.Path
	}
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.Port != "" {
		v.Host = u.Host + ":" + u.Port
	}
	if u.User != "" && u.Scheme == "ssh" {
		v.User = url.User(u.User)
	}
	return v.String()
}

// isSSH reports whether git reaches the repository over ssh.
func (u repoURL) isSSH() bool { return u.Scheme == "ssh" || u.Scheme == "scp" }

// isHTTP reports whether git reaches the repository over http(s).
func (u repoURL) isHTTP() bool { return u.Scheme == "https" || u.Scheme == "http" }

// absPath is the repository path with a leading slash (scp paths are
// relative to the login directory, which forges treat as the root).
func (u repoURL) absPath() string {
	if strings.HasPrefix(u.Path, "/") {
		return u.Path
	}
	return "/" + u.Path
}

// toHTTPS rewrites an ssh URL to https on the same host; the ssh user
// ("git") and port are dropped.
func (u repoURL) toHTTPS() repoURL {
	return repoURL{Scheme: "https", Host: u.Host, Path: u.absPath()}
}

// toSSH rewrites an http(s) URL to ssh://git@host/path.
func (u repoURL) toSSH() repoURL {
	return repoURL{Scheme: "ssh", User: "git", Host: u.Host, Path: u.absPath()}
}

// cacheKey identifies the repository independently of the access protocol,
// so that git@host:org/x.git and https://host/org/x share one mirror. An
// explicit non-default port is part of the key.
func (u repoURL) cacheKey() string {
	if u.Scheme == "file" {
		return "file:" + u.Path
	}
	p := strings.TrimSuffix(path.Clean(u.absPath()), "/")
	p = strings.TrimSuffix(p, ".git")
	host := u.Host
	if u.Port != "" && !(u.Port == "443" && u.Scheme == "https") && !(u.Port == "80" && u.Scheme == "http") &&
		!(u.Port == "22" && u.isSSH()) {
		host += ":" + u.Port
	}
	return host + p
}

// name is a file-system friendly repository name taken from the URL path.
func (u repoURL) name() string {
	n := strings.TrimSuffix(path.Base(strings.TrimSuffix(filepath.ToSlash(u.Path), "/")), ".git")
	n = strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, n)
	n = strings.TrimLeft(n, ".-")
	if n == "" {
		n = "repository"
	}
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// mirrorName is the mirror's directory name in the cache.
//
// The key names the layout too: mirrors of earlier versions, which task
// containers could write, are never used (they age out with the cache).
func (u repoURL) mirrorName() string {
	sum := sha256.Sum256([]byte("mirror-v2\x00" + u.cacheKey()))
	return u.name() + "-" + hex.EncodeToString(sum[:8])
}

// RedactURL replaces the password in a URL's user information with
// ******** (https://user:********@host/...), for messages: the user name
// stays, so that the reader sees which account is used. A user name alone
// in an http(s) URL is masked too: that is where tokens go
// (https://TOKEN@github.com/...). Text that is not such a URL is returned
// as it is.
func RedactURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	switch scheme := strings.ToLower(raw[:i]); {
	case hasPass:
		return raw[:i+3] + user + ":********" + rest[at:]
	case scheme == "http" || scheme == "https":
		return raw[:i+3] + "********" + rest[at:]
	}
	return raw
}

// redactURL removes a password from an http(s) URL for messages about
// invalid input (the input may carry one).
func redactURL(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return raw[:i+3] + "***@" + rest[at+1:]
		}
	}
	return raw
}

var (
	hexRe        = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-fA-F]{4,64}$`) })
	refForbidden = "`$;|&<>()'\"\\*?[]{}!~^: \t"
)

// validateCommit checks a version_num: hexadecimal, 4 to 64 digits.
func validateCommit(c string) error {
	if !hexRe().MatchString(c) {
		return invalidf("invalid commit %q: script.version_num must be a hexadecimal commit id (4-64 digits)", c)
	}
	return nil
}

// precheckRef rejects branch and tag names that could be read as options
// or that contain characters no sane ref needs (shell metacharacters
// included, although no shell is ever involved). git check-ref-format
// --branch runs afterwards for the rest of git's rules.
func precheckRef(kind, name string) error {
	switch {
	case strings.HasPrefix(name, "-"):
		return invalidf("invalid %s %q: must not start with '-'", kind, name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalidf("invalid %s %q: contains control characters", kind, name)
	case strings.ContainsAny(name, refForbidden):
		return invalidf("invalid %s %q: contains characters not allowed in a git ref name", kind, name)
	case strings.Contains(name, "@{") || name == "@" || strings.Contains(name, ".."):
		return invalidf("invalid %s %q: not a valid git ref name", kind, name)
	case len(name) > 255:
		return invalidf("invalid %s: longer than 255 characters", kind)
	}
	return nil
}
