package vcs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// errLockTimeout is returned by lockFile when the lock stays taken.
var errLockTimeout = errors.New("lock wait timed out")

// DefaultLockTimeout is how long Checkout waits for another process to
// release a mirror before it falls back to a private temporary mirror.
const DefaultLockTimeout = 5 * time.Minute

// mirror is a bare mirror clone of one repository, locked while in use.
type mirror struct {
	r        *runner
	u        repoURL
	dir      string
	hit      bool // the mirror existed before this checkout
	fetched  bool // the mirror is as fresh as this checkout can make it
	readOnly bool // someone else's mirror, used as it is (Options.ReadOnlyCache)
	unlock   func()
	tmp      string // private mirror's parent, removed on close
}

// openMirror locks the repository's mirror in o.CacheDir and makes sure it
// exists (cloning it on a miss), or makes a private one.
func openMirror(ctx context.Context, r *runner, o Options, u repoURL) (*mirror, error) {
	m := &mirror{r: r, u: u}
	if o.CacheDir == "" {
		return m, m.private(ctx, "")
	}
	if o.ReadOnlyCache {
		dir := filepath.Join(o.CacheDir, u.mirrorName()+".git")
		if isMirror(dir) {
			if why := untrustedMirror(ctx, r, dir); why != "" {
				r.logf("not using the read-only mirror %s: %s", dir, why)
				return m, m.private(ctx, "")
			}
			r.logf("using the read-only mirror of %s (cached mirror hit)", u)
			m.dir, m.hit, m.readOnly, m.fetched = dir, true, true, true
			return m, nil
		}
		return m, m.private(ctx, "")
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot create the git cache %s: %v", o.CacheDir, err), Err: err}
	}
	name := u.mirrorName()
	timeout := o.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	unlock, err := lockFile(ctx, filepath.Join(o.CacheDir, name+".lock"), timeout)
	switch {
	case errors.Is(err, errLockTimeout):
		r.logf("the cached mirror of %s stayed locked for %s: using a private temporary mirror", u, timeout)
		return m, m.private(ctx, o.CacheDir)
	case err != nil:
		return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot lock the cached mirror of %s: %v", u, err), Err: err}
	}
	m.unlock = unlock
	m.dir = filepath.Join(o.CacheDir, name+".git")
	if isMirror(m.dir) {
		if why := untrustedMirror(ctx, r, m.dir); why != "" {
			// Written by something other than the agent: never used.
			r.logf("the cached mirror %s was changed outside the agent (%s): cloning it again", m.dir, why)
			if err := os.RemoveAll(m.dir); err != nil {
				m.close()
				return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot remove the changed mirror %s: %v", m.dir, err), Err: err}
			}
		}
	}
	if isMirror(m.dir) {
		m.hit = true
		r.logf("using the cached mirror of %s (cached mirror hit)", u)
		if err := m.setURL(ctx); err != nil {
			m.close()
			return nil, err
		}
		return m, nil
	}
	if _, err := os.Stat(m.dir); err == nil {
		r.logf("the cached mirror %s is incomplete: cloning it again", m.dir)
		if err := os.RemoveAll(m.dir); err != nil {
			m.close()
			return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot remove the broken mirror %s: %v", m.dir, err), Err: err}
		}
	}
	r.logf("cloning %s into the mirror cache (cache miss)", u)
	tmp, err := os.MkdirTemp(o.CacheDir, ".tmp-"+name+"-")
	if err == nil {
		err = m.clone(ctx, tmp)
		if err == nil {
			err = os.Rename(tmp, m.dir)
		}
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}
	if err != nil {
		m.close()
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot create the mirror of %s: %v", u, err), Err: err}
	}
	return m, nil
}

// private clones a mirror into a new temporary directory under parent.
func (m *mirror) private(ctx context.Context, parent string) error {
	tmp, err := os.MkdirTemp(parent, ".mirror-"+m.u.name()+"-")
	if err != nil {
		return &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot create a temporary mirror: %v", err), Err: err}
	}
	m.tmp, m.dir = tmp, filepath.Join(tmp, "mirror.git")
	m.r.logf("cloning %s", m.u)
	if err := m.clone(ctx, m.dir); err != nil {
		m.close()
		return err
	}
	return nil
}

func (m *mirror) clone(ctx context.Context, dir string) error {
	// Hooks stay off in the mirror's own configuration too (every git
	// command of the agent also turns them off, see newRunner).
	if _, err := m.r.run(ctx, "", nil, "clone", "--mirror", "--quiet", "--config", "core.hooksPath="+os.DevNull,
		"--", m.u.String(), dir); err != nil {
		return m.r.remoteFail("clone", m.u, err)
	}
	m.fetched = true
	return nil
}

// privateCopy replaces a read-only mirror with a private copy of it whose
// origin is the repository, to fetch into.
func (m *mirror) privateCopy(ctx context.Context) (*mirror, error) {
	p := &mirror{r: m.r, u: m.u, hit: true}
	tmp, err := os.MkdirTemp("", ".mirror-"+m.u.name()+"-")
	if err != nil {
		return nil, &Error{Kind: KindGit, Op: "clone", Reason: fmt.Sprintf("cannot create a temporary mirror: %v", err), Err: err}
	}
	p.tmp, p.dir = tmp, filepath.Join(tmp, "mirror.git")
	m.close()
	// Copied, not hard-linked: the copy shares nothing with the mirror.
	if _, err := p.r.run(ctx, "", nil, "clone", "--mirror", "--quiet", "--no-hardlinks", "--config", "core.hooksPath="+os.DevNull,
		"--", m.dir, p.dir); err != nil {
		p.close()
		return nil, p.r.fail(KindGit, "clone", err, "could not copy the read-only mirror of %s", m.u)
	}
	if err := p.setURL(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// isMirror reports whether dir looks like a complete bare repository.
func isMirror(dir string) bool {
	for _, f := range []string{"HEAD", "config", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// setURL points the mirror at the URL of this checkout (the same
// repository may be reached over ssh one day and https the next).
func (m *mirror) setURL(ctx context.Context) error {
	cur, _ := m.git(ctx, "config", "--get", "remote.origin.url")
	if strings.TrimSpace(cur) == m.u.String() {
		return nil
	}
	if _, err := m.git(ctx, "config", "remote.origin.url", m.u.String()); err != nil {
		return m.r.fail(KindGit, "fetch", err, "cannot update the cached mirror %s", m.dir)
	}
	return nil
}

func (m *mirror) git(ctx context.Context, args ...string) (string, error) {
	return m.r.run(ctx, "", nil, append([]string{"--git-dir=" + m.dir}, args...)...)
}

// fetch brings the mirror up to date.
func (m *mirror) fetch(ctx context.Context) error {
	if m.readOnly {
		// Never written: the caller fetches into a private copy instead.
		return &Error{Kind: KindNotFound, Op: "fetch", Reason: "the revision is not in the read-only mirror of " + m.u.String()}
	}
	m.r.logf("fetching %s into the cached mirror", m.u)
	if _, err := m.git(ctx, "fetch", "--prune", "--quiet", "origin"); err != nil {
		return m.r.remoteFail("fetch", m.u, err)
	}
	m.fetched = true
	return nil
}

// verify resolves a revision expression to a commit sha; "" when absent.
func (m *mirror) verify(ctx context.Context, rev string) string {
	out, err := m.git(ctx, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// revision is what to check out.
type revision struct {
	sha    string
	branch string // local branch to create; empty for a detached HEAD
	what   string // for messages
}

// resolve finds the commit to check out: src.Commit, else src.Tag, else
// src.Branch, else the remote's default branch (master, then main, when
// the remote has no HEAD).
func (m *mirror) resolve(ctx context.Context, src Source) (revision, error) {
	if src.Commit != "" {
		sha := m.verify(ctx, src.Commit)
		if sha != "" && !m.fetched {
			m.r.logf("commit %s is in the cached mirror: not fetching", src.Commit)
		}
		if sha == "" {
			// Fetch (again, once, when the mirror was just cloned).
			if err := m.fetch(ctx); err != nil {
				return revision{}, err
			}
			sha = m.verify(ctx, src.Commit)
		}
		if sha == "" {
			return revision{}, &Error{Kind: KindNotFound, Op: "resolve",
				Reason: fmt.Sprintf("commit %s not found in %s: check script.version_num (was the commit pushed?)", src.Commit, m.u)}
		}
		return revision{sha: sha, what: "commit " + sha}, nil
	}
	if !m.fetched {
		if err := m.fetch(ctx); err != nil {
			return revision{}, err
		}
	}
	switch {
	case src.Tag != "":
		sha := m.verify(ctx, "refs/tags/"+src.Tag)
		if sha == "" {
			return revision{}, &Error{Kind: KindNotFound, Op: "resolve",
				Reason: fmt.Sprintf("tag %s not found in %s: check script.tag", src.Tag, m.u)}
		}
		return revision{sha: sha, what: "tag " + src.Tag + " (" + sha + ")"}, nil
	case src.Branch != "":
		names := []string{src.Branch}
		if rest, ok := strings.CutPrefix(src.Branch, "origin/"); ok && rest != "" {
			names = append(names, rest)
		}
		for _, b := range names {
			if sha := m.verify(ctx, "refs/heads/"+b); sha != "" {
				return revision{sha: sha, branch: b, what: "branch " + b}, nil
			}
		}
		return revision{}, &Error{Kind: KindNotFound, Op: "resolve",
			Reason: fmt.Sprintf("branch %s not found in %s: check script.branch", src.Branch, m.u)}
	}
	var names []string
	if head, err := m.git(ctx, "symbolic-ref", "--quiet", "HEAD"); err == nil {
		if b, ok := strings.CutPrefix(strings.TrimSpace(head), "refs/heads/"); ok {
			names = append(names, b)
		}
	}
	for _, b := range append(names, "master", "main") {
		if sha := m.verify(ctx, "refs/heads/"+b); sha != "" {
			return revision{sha: sha, branch: b, what: "default branch " + b}, nil
		}
	}
	return revision{}, &Error{Kind: KindNotFound, Op: "resolve",
		Reason: fmt.Sprintf("no default branch found in %s (is the repository empty?): set script.branch", m.u)}
}

// close releases the lock and removes a private mirror. It is idempotent.
func (m *mirror) close() {
	if m.unlock != nil {
		m.unlock()
		m.unlock = nil
	}
	if m.tmp != "" {
		_ = os.RemoveAll(m.tmp)
		m.tmp = ""
	}
}
