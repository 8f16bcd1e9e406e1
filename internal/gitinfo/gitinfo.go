// Package gitinfo reads what a task needs to know about a local git
// checkout: its root folder, the remote URL it came from, the current
// branch and commit, and the uncommitted changes of tracked files (the
// output of "git diff HEAD"), as ClearML's clearml-task records them.
//
// It runs the git binary (os/exec, arguments as a slice, no shell) with a
// fixed C locale and without terminal prompts, so it reads the checkout the
// way the user's own git does: worktrees, submodules and configuration
// included. Nothing here changes the repository; optional locks are turned
// off (GIT_OPTIONAL_LOCKS=0) so that reading does not even refresh the index.
package gitinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotRepository is returned (errors.Is) when the path is not inside a
// git working tree.
var ErrNotRepository = errors.New("not inside a git checkout")

// ErrGitNotFound is returned (errors.Is) when no git binary is on PATH.
var ErrGitNotFound = errors.New("git is not installed (no git executable found in PATH)")

// Info describes a checkout.
type Info struct {
	// Root is the top folder of the working tree, symbolic links resolved.
	Root string
	// Remote is the name of the remote RemoteURL belongs to ("origin"); empty
	// when the checkout has no remote.
	Remote string
	// RemoteURL is the remote's URL with any user name and password removed
	// from http(s) URLs (https://user:pass@host/x becomes https://host/x).
	RemoteURL string
	// Branch is the current branch's short name; empty on a detached HEAD.
	Branch string
	// Commit is HEAD's full hash; empty in a repository without commits.
	Commit string
	// Diff is "git diff HEAD": the uncommitted changes of tracked files,
	// staged or not. Empty when there are none or there is no commit.
	Diff string
}

// Read describes the checkout that holds path, a file or a folder.
func Read(ctx context.Context, path string) (*Info, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	dir := abs
	if !st.IsDir() {
		dir = filepath.Dir(abs)
	}
	g := runner{dir: dir}
	top, err := g.output(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	info := &Info{Root: strings.TrimSpace(top)}
	if resolved, err := filepath.EvalSymlinks(info.Root); err == nil {
		info.Root = resolved
	}
	// Both may fail legitimately: no commit yet, detached HEAD.
	if c, err := g.output(ctx, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err == nil {
		info.Commit = strings.TrimSpace(c)
	} else if !isExit(err) {
		return nil, err
	}
	if b, err := g.output(ctx, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		info.Branch = strings.TrimSpace(b)
	} else if !isExit(err) {
		return nil, err
	}
	if info.Remote, err = g.remoteName(ctx, info.Branch); err != nil {
		return nil, err
	}
	if info.Remote != "" {
		u, err := g.output(ctx, "config", "--get", "remote."+info.Remote+".url")
		if err != nil && !isExit(err) {
			return nil, err
		}
		info.RemoteURL = StripCredentials(strings.TrimSpace(u))
	}
	if info.Commit != "" {
		d, err := g.output(ctx, "diff", "--no-color", "--no-ext-diff", "HEAD")
		if err != nil {
			return nil, err
		}
		info.Diff = d
	}
	return info, nil
}

// remoteName picks the remote to record: the current branch's upstream
// remote, else "origin", else the first remote git lists.
func (g runner) remoteName(ctx context.Context, branch string) (string, error) {
	out, err := g.output(ctx, "remote")
	if err != nil {
		return "", err
	}
	remotes := strings.Fields(out)
	if len(remotes) == 0 {
		return "", nil
	}
	if branch != "" {
		if r, err := g.output(ctx, "config", "--get", "branch."+branch+".remote"); err == nil {
			for _, name := range remotes {
				if name == strings.TrimSpace(r) {
					return name, nil
				}
			}
		}
	}
	for _, name := range remotes {
		if name == "origin" {
			return name, nil
		}
	}
	return remotes[0], nil
}

// StripCredentials removes the user information from an http or https URL
// and returns other URLs (ssh, scp-like git@host:path, local paths)
// unchanged: their user name is an account, not a secret.
func StripCredentials(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return raw
	}
	return scheme + "://" + rest[at+1:]
}

// runner runs git in one folder.
type runner struct{ dir string }

// gitError is a git command that ran and failed.
type gitError struct {
	args   []string
	code   int
	stderr string
}

func (e *gitError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = fmt.Sprintf("exit status %d", e.code)
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.args, " "), msg)
}

func isExit(err error) bool {
	var ge *gitError
	return errors.As(err, &ge)
}

// output runs git with args and returns its standard output.
func (g runner) output(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-C", g.dir}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANGUAGE=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0", "GIT_PAGER=cat")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", ErrGitNotFound
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return "", fmt.Errorf("running git: %w", err)
	}
	if strings.Contains(stderr.String(), "not a git repository") {
		return "", fmt.Errorf("%s: %w", g.dir, ErrNotRepository)
	}
	return "", &gitError{args: args, code: ee.ExitCode(), stderr: stderr.String()}
}
