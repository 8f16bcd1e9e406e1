// Package vcs prepares a task's source tree from git, the way the ClearML
// agent does (spec section 3.4): clone the task's repository, check out
// script.version_num, else script.tag, else script.branch (else the
// remote's default branch), update submodules, and apply the uncommitted
// changes recorded in script.diff. Tasks without a repository carry their
// whole script in script.diff; LiteralScript writes it out.
//
// Clones go through a mirror cache: one bare "git clone --mirror" per
// repository (keyed on host and path, so ssh and https forms share it) under
// Options.CacheDir, guarded by an flock so several daemons on one machine
// can share the cache. A checkout fetches into the mirror (skipped when the
// pinned commit is already there), then makes a local clone of the mirror,
// which hard-links its objects and stays valid if the mirror is later
// pruned or is not visible (as inside a container).
//
// Credentials never appear in a URL, an argument list, the mirror's
// configuration, a log line or an error: git asks for them through a
// GIT_ASKPASS helper script that reads them from its environment (see
// Env, which also serves pip's git+https requirements). Credentials found in
// a task's https URL are taken out of it and used the same way. Every git
// process runs without a shell, with GIT_TERMINAL_PROMPT=0 and ssh in batch
// mode, so nothing ever waits for a prompt; user-supplied values are
// validated and placed after "--" where git accepts it.
package vcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Credentials are the git user name and password (or token):
// agent.git_user / agent.git_pass, CLEARML_AGENT_GIT_USER / _PASS.
type Credentials struct {
	User, Password string
	// Host, when set (agent.git_host, CLEARML_AGENT_GIT_HOST), limits the
	// credentials to repositories on that host name.
	Host string
}

func (c Credentials) set() bool { return c.User != "" || c.Password != "" }

// appliesTo reports whether the credentials may be sent to host.
func (c Credentials) appliesTo(host string) bool {
	return c.set() && (c.Host == "" || strings.EqualFold(c.Host, host))
}

// Options configure Checkout and Env.
type Options struct {
	// CacheDir is the mirror cache root (agent.vcs_cache.path, by default
	// ~/.clearml/vcs-cache). Empty disables the cache: each checkout uses a
	// temporary mirror that is removed afterwards.
	CacheDir    string
	Credentials Credentials
	// ForceSSH rewrites https URLs to ssh://git@host/... (agent.force_git_ssh_protocol).
	ForceSSH bool
	// ForceHTTPS rewrites ssh URLs to https even without credentials. With
	// credentials that apply to the host, ssh URLs are rewritten anyway
	// unless ForceSSH is set (agent.translate_ssh).
	ForceHTTPS bool
	// GitBinary is the git executable; default "git".
	GitBinary string
	// Log receives human-readable progress lines for the task log. It
	// never receives credentials.
	Log io.Writer
	// Logger receives debug records (git argument lists, timings).
	Logger *slog.Logger
	// ExtraEnv is appended to every git process's environment (KEY=VALUE).
	ExtraEnv []string
	// LockTimeout bounds the wait for a mirror's lock (default 5 minutes,
	// as the Python agent); after it a private temporary mirror is used.
	LockTimeout time.Duration
	// ReadOnlyCache says that CacheDir is kept by someone else (a task's
	// container sees the host's mirror of its repository read-only): a
	// mirror found there is used as it is, never fetched into or locked,
	// and a revision it lacks is fetched into a private copy.
	ReadOnlyCache bool
}

func (o Options) git() string {
	if o.GitBinary == "" {
		return "git"
	}
	return o.GitBinary
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Source is what a task says about its code (the script section).
type Source struct {
	Repository string // script.repository
	Branch     string // script.branch
	Tag        string // script.tag
	Commit     string // script.version_num
	Diff       string // script.diff: uncommitted changes
	// SkipSubmodules turns off "git submodule update --init --recursive"
	// (submodules are updated by default).
	SkipSubmodules bool
}

// Result describes a prepared tree.
type Result struct {
	Dir    string
	Commit string // full sha of HEAD
	// Branch is the branch checked out; empty when HEAD is detached
	// (a commit or tag was requested).
	Branch string
	// URL is the repository URL used, without credentials.
	URL      string
	CacheHit bool // the mirror existed already
	Duration time.Duration
}

// Kind classifies an Error.
type Kind string

// Error kinds.
const (
	KindInvalid  Kind = "invalid"   // malformed or hostile input; nothing was run
	KindAuth     Kind = "auth"      // the remote refused the credentials
	KindNotFound Kind = "not-found" // repository, commit, branch or tag missing
	KindNetwork  Kind = "network"   // host unreachable
	KindDiff     Kind = "diff"      // uncommitted changes do not apply
	KindGit      Kind = "git"       // any other failure
)

// Error is the error type of this package. Reason is a complete sentence
// for the task log saying what failed and what to check.
type Error struct {
	Kind   Kind
	Op     string // validate, clone, fetch, resolve, checkout, diff, literal
	Reason string
	Err    error // underlying error, credentials removed
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

func invalidf(format string, a ...any) *Error {
	return &Error{Kind: KindInvalid, Op: "validate", Reason: fmt.Sprintf(format, a...)}
}

// Checkout clones src.Repository (through the mirror cache) into dir, which
// must not exist or be empty, checks out the requested revision, updates
// submodules and applies src.Diff. On failure dir is left empty (or absent)
// and the error is an *Error.
func Checkout(ctx context.Context, o Options, src Source, dir string) (*Result, error) {
	start := time.Now()
	u, creds, err := prepare(ctx, o, src)
	if err != nil {
		return nil, err
	}
	existed, err := checkDest(dir)
	if err != nil {
		return nil, err
	}
	r, cleanup, err := newRunner(o, u, creds)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res, err := checkout(ctx, r, o, u, src, dir)
	if err != nil {
		emptyDest(dir, existed)
		return nil, err
	}
	res.Duration = time.Since(start)
	r.logf("repository ready: url=%s branch=%s commit=%s root=%s (%s, %s)", res.URL, orNone(res.Branch), res.Commit,
		res.Dir, res.Duration.Round(time.Millisecond), map[bool]string{true: "cached mirror", false: "new mirror"}[res.CacheHit])
	return res, nil
}

// prepare validates src and works out the URL git uses and the credentials.
func prepare(ctx context.Context, o Options, src Source) (repoURL, Credentials, error) {
	u, urlUser, urlPass, err := parseRepository(strings.TrimSpace(src.Repository))
	if err != nil {
		return u, Credentials{}, err
	}
	if src.Commit != "" {
		if err := validateCommit(src.Commit); err != nil {
			return u, Credentials{}, err
		}
	}
	for _, ref := range []struct{ kind, name string }{{"branch", src.Branch}, {"tag", src.Tag}} {
		if ref.name == "" {
			continue
		}
		if err := precheckRef(ref.kind, ref.name); err != nil {
			return u, Credentials{}, err
		}
		if err := checkRefFormat(ctx, o, ref.kind, ref.name); err != nil {
			return u, Credentials{}, err
		}
	}
	creds := o.Credentials
	if !creds.appliesTo(u.Host) {
		creds = Credentials{}
	}
	if !creds.set() && (urlUser != "" || urlPass != "") {
		creds = Credentials{User: urlUser, Password: urlPass, Host: u.Host}
	}
	switch {
	case o.ForceSSH && u.isHTTP():
		u = u.toSSH()
	case !o.ForceSSH && u.isSSH() && (o.ForceHTTPS || creds.set()):
		from := u.String()
		u = u.toHTTPS()
		if creds.set() {
			writeLog(o.Log, "using user/pass credentials: replacing ssh url %s with %s", from, u.String())
		} else {
			writeLog(o.Log, "replacing ssh url %s with %s", from, u.String())
		}
	}
	return u, creds, nil
}

// checkDest verifies that dir is absent or empty; existed says which.
func checkDest(dir string) (existed bool, err error) {
	if dir == "" {
		return false, invalidf("no destination directory given")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return false, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot create %s: %v", filepath.Dir(dir), err), Err: err}
		}
		return false, nil
	case err != nil:
		return false, &Error{Kind: KindInvalid, Op: "validate", Reason: fmt.Sprintf("cannot use destination %s: %v", dir, err), Err: err}
	case len(entries) > 0:
		return true, invalidf("destination %s is not empty", dir)
	}
	return true, nil
}

// emptyDest undoes a failed checkout.
func emptyDest(dir string, existed bool) {
	if !existed {
		_ = os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// checkout does the work once inputs are valid.
func checkout(ctx context.Context, r *runner, o Options, u repoURL, src Source, dir string) (*Result, error) {
	m, err := openMirror(ctx, r, o, u)
	if err != nil {
		return nil, err
	}
	defer func() { m.close() }()
	rev, err := m.resolve(ctx, src)
	if err != nil && m.readOnly {
		// The read-only mirror lacks the revision: fetch it into a
		// private copy of it.
		r.logf("%s; fetching into a private copy of the read-only mirror", firstLine(err.Error()))
		p, perr := m.privateCopy(ctx)
		if perr != nil {
			return nil, perr
		}
		m = p
		rev, err = m.resolve(ctx, src)
	}
	if err != nil {
		return nil, err
	}
	cloneArgs := []string{"clone", "--no-checkout", "--quiet"}
	if m.readOnly {
		cloneArgs = append(cloneArgs, "--no-hardlinks") // someone else's objects are not shared
	}
	if _, err := r.run(ctx, "", nil, append(cloneArgs, "--", m.dir, dir)...); err != nil {
		return nil, r.fail(KindGit, "clone", err, "could not copy the cached mirror of %s into %s", u, dir)
	}
	m.close() // the copy is independent of the mirror from here on
	if _, err := r.run(ctx, dir, nil, "remote", "set-url", "origin", u.String()); err != nil {
		return nil, r.fail(KindGit, "checkout", err, "could not set the origin of %s", dir)
	}
	res := &Result{Dir: dir, URL: u.String(), CacheHit: m.hit}
	if rev.branch != "" {
		r.logf("checking out branch %s at %s", rev.branch, rev.sha)
		_, err = r.run(ctx, dir, nil, "checkout", "--force", "--quiet", "-B", rev.branch, rev.sha)
		if err == nil {
			_, err = r.run(ctx, dir, nil, "config", "branch."+rev.branch+".remote", "origin")
		}
		if err == nil {
			_, err = r.run(ctx, dir, nil, "config", "branch."+rev.branch+".merge", "refs/heads/"+rev.branch)
		}
		res.Branch = rev.branch
	} else {
		r.logf("checking out %s", rev.what)
		_, err = r.run(ctx, dir, nil, "checkout", "--force", "--quiet", "--detach", rev.sha)
	}
	if err != nil {
		return nil, r.fail(KindGit, "checkout", err, "could not check out %s of %s", rev.what, u)
	}
	if !src.SkipSubmodules {
		if _, err := os.Stat(filepath.Join(dir, ".gitmodules")); err == nil {
			r.logf("updating submodules")
			if _, err := r.run(ctx, dir, nil, "submodule", "update", "--init", "--recursive", "--quiet"); err != nil {
				// The Python agent ignores submodule failures too; say so.
				r.logf("WARNING: submodule update failed (continuing without it): %s", excerpt(r.redact(errText(err))))
			}
		}
	}
	if strings.TrimSpace(src.Diff) != "" {
		if err := applyDiff(ctx, r, dir, src.Diff); err != nil {
			return nil, err
		}
	}
	out, err := r.run(ctx, dir, nil, "rev-parse", "HEAD")
	if err != nil {
		return nil, r.fail(KindGit, "checkout", err, "could not read HEAD in %s", dir)
	}
	res.Commit = strings.TrimSpace(out)
	return res, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Prefetch brings the cached mirror of src's repository up to date for
// src's revision (cloning it on a miss), as Checkout does, without making
// a checkout, and returns the mirror's folder. The daemon calls it on the
// host before a task's container starts, so that the container can see
// the mirror read-only and never needs to write it.
func Prefetch(ctx context.Context, o Options, src Source) (string, error) {
	if o.CacheDir == "" || o.ReadOnlyCache {
		return "", invalidf("no writable git cache to prefetch into")
	}
	u, creds, err := prepare(ctx, o, src)
	if err != nil {
		return "", err
	}
	r, cleanup, err := newRunner(o, u, creds)
	if err != nil {
		return "", err
	}
	defer cleanup()
	m, err := openMirror(ctx, r, o, u)
	if err != nil {
		return "", err
	}
	defer m.close()
	if m.tmp != "" {
		return "", &Error{Kind: KindGit, Op: "clone", Reason: "the cached mirror of " + u.String() + " is locked by another checkout"}
	}
	if _, err := m.resolve(ctx, src); err != nil {
		return "", err
	}
	return m.dir, nil
}

func orNone(s string) string {
	if s == "" {
		return "(detached)"
	}
	return s
}

func writeLog(w io.Writer, format string, a ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", a...)
	}
}
