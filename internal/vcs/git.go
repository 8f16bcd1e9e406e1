package vcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Environment variables read by the askpass helper.
const (
	EnvAskpassUser = "CLEARML_AGENT_GIT_ASKPASS_USER"
	EnvAskpassPass = "CLEARML_AGENT_GIT_ASKPASS_PASS"
	EnvAskpassHost = "CLEARML_AGENT_GIT_ASKPASS_HOST"
)

// askpassScript answers git's "Username for '...'" and "Password for
// '...'" prompts from the environment. With a host limit it answers only
// prompts for that host. It holds no secret itself.
const askpassScript = `#!/bin/sh
# git askpass helper of the clearml agent: answers come from the environment.
case "$1" in
[Uu]sername*) v="$` + EnvAskpassUser + `" ;;
*) v="$` + EnvAskpassPass + `" ;;
esac
h="$` + EnvAskpassHost + `"
if [ -n "$h" ]; then
	case "$1" in
	*"://$h'"*|*"://$h:"*|*"://$h/"*|*"@$h'"*|*"@$h:"*|*"@$h/"*) ;;
	*) v="" ;;
	esac
fi
printf '%s\n' "$v"
`

// Env returns environment variables (to append to os.Environ()) that let
// git, and pip's git+https requirements, use o.Credentials without putting
// them in a URL, an argument list or a log: GIT_ASKPASS pointing at a small
// helper script (mode 0700, under o.CacheDir or the temp dir) that prints
// the user or password from CLEARML_AGENT_GIT_ASKPASS_USER / _PASS, a reset
// of credential.helper so that no credential store saves them, and
// GIT_TERMINAL_PROMPT=0 so that git fails instead of waiting for a prompt.
// Without credentials only the prompt settings are returned. cleanup removes
// the helper; call it when the processes using env have finished.
func Env(o Options) (env []string, cleanup func(), err error) {
	return gitEnv(o, o.Credentials, o.Credentials.Host)
}

func gitEnv(o Options, creds Credentials, host string) (env []string, cleanup func(), err error) {
	cleanup = func() {}
	env = []string{"GIT_TERMINAL_PROMPT=0"}
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		env = append(env, "GIT_SSH_COMMAND=ssh -oBatchMode=yes")
	}
	if !creds.set() {
		return env, cleanup, nil
	}
	dir := o.CacheDir
	if dir == "" || o.ReadOnlyCache {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cleanup, fmt.Errorf("vcs: askpass helper: %w", err)
	}
	f, err := os.CreateTemp(dir, ".git-askpass-*.sh")
	if err != nil {
		return nil, cleanup, fmt.Errorf("vcs: askpass helper: %w", err)
	}
	name := f.Name()
	_, werr := f.WriteString(askpassScript)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(name, 0o700)); err != nil {
		_ = os.Remove(name)
		return nil, cleanup, fmt.Errorf("vcs: askpass helper: %w", err)
	}
	env = append(env, "GIT_ASKPASS="+name, EnvAskpassUser+"="+creds.User, EnvAskpassPass+"="+creds.Password)
	if host != "" {
		env = append(env, EnvAskpassHost+"="+host)
	}
	// An empty credential.helper empties the helper list, so that no
	// configured store ever saves (or substitutes) the agent's credentials.
	env = append(env, configEnv(os.Environ(), [][2]string{{"credential.helper", ""}})...)
	return env, func() { _ = os.Remove(name) }, nil
}

// configEnv adds git configuration through GIT_CONFIG_COUNT/KEY_n/VALUE_n,
// after whatever base already defines that way.
func configEnv(base []string, kv [][2]string) []string {
	n := 0
	for _, e := range base {
		if v, ok := strings.CutPrefix(e, "GIT_CONFIG_COUNT="); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	var out []string
	for i, p := range kv {
		out = append(out, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n+i, p[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n+i, p[1]))
	}
	return append(out, fmt.Sprintf("GIT_CONFIG_COUNT=%d", n+len(kv)))
}

// runner runs git for one checkout.
type runner struct {
	bin     string
	env     []string
	log     *slog.Logger
	o       Options
	secrets []string
}

// inherited git variables that would redirect our commands elsewhere.
var dropEnv = []string{"GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_OBJECT_DIRECTORY=",
	"GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_NAMESPACE=", "GIT_COMMON_DIR=", "GIT_PREFIX="}

func newRunner(o Options, u repoURL, creds Credentials) (*runner, func(), error) {
	env, cleanup, err := gitEnv(o, creds, u.Host)
	if err != nil {
		return nil, cleanup, &Error{Kind: KindGit, Op: "clone", Reason: err.Error(), Err: err}
	}
	base := make([]string, 0, len(os.Environ())+len(env)+8)
	for _, e := range os.Environ() {
		drop := false
		for _, p := range dropEnv {
			drop = drop || strings.HasPrefix(e, p)
		}
		if !drop {
			base = append(base, e)
		}
	}
	// No hook or file-system monitor of any repository ever runs: the
	// mirrors' are the agent's (checked before use, see trust.go), and a
	// checkout's own come from nowhere but templates.
	cfg := [][2]string{{"safe.directory", "*"}, {"advice.detachedHead", "false"}, {"core.hooksPath", os.DevNull}, {"core.fsmonitor", "false"}}
	if u.Scheme == "https" && u.Host != "" {
		// Submodules on the same host written as ssh URLs go over https too.
		cfg = append(cfg, [2]string{"url.https://" + u.Host + "/.insteadOf", "git@" + u.Host + ":"},
			[2]string{"url.https://" + u.Host + "/.insteadOf", "ssh://git@" + u.Host + "/"})
	}
	base = append(base, env...)
	base = append(base, configEnv(base, cfg)...)
	if os.Getenv("GIT_ALLOW_PROTOCOL") == "" {
		base = append(base, "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh")
	}
	base = append(base, "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	base = append(base, o.ExtraEnv...)
	r := &runner{bin: o.git(), env: base, log: o.logger(), o: o}
	for _, s := range []string{creds.Password, tokenUser(creds)} {
		if s != "" {
			r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	return r, cleanup, nil
}

// tokenUser treats a user name without a password as a token (as in
// https://TOKEN@github.com/...).
func tokenUser(c Credentials) string {
	if c.Password == "" {
		return c.User
	}
	return ""
}

// gitError is a failed git command.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.args, " "), e.err, strings.TrimSpace(e.stderr))
}

func (e *gitError) Unwrap() error { return e.err }

func errText(err error) string {
	var ge *gitError
	if errors.As(err, &ge) {
		if s := strings.TrimSpace(ge.stderr); s != "" {
			return s
		}
		return ge.err.Error()
	}
	return err.Error()
}

// run runs git with args (never through a shell) in dir and returns stdout.
func (r *runner) run(ctx context.Context, dir string, stdin []byte, args ...string) (string, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = dir
	cmd.Env = r.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r.log.Debug("git", "args", args, "dir", dir, "duration", time.Since(start), "err", err)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return stdout.String(), &gitError{args: args, stderr: r.redact(stderr.String()), err: err}
	}
	return stdout.String(), nil
}

// redact removes the credentials from s.
func (r *runner) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

func (r *runner) logf(format string, a ...any) {
	if r.o.Log != nil {
		fmt.Fprintln(r.o.Log, r.redact(fmt.Sprintf(format, a...)))
	}
}

// fail wraps a git error into an *Error with a reason made of the message
// and git's own words.
func (r *runner) fail(kind Kind, op string, err error, format string, a ...any) *Error {
	msg := r.redact(fmt.Sprintf(format, a...))
	return &Error{Kind: kind, Op: op, Reason: msg + ": " + excerpt(r.redact(errText(err))), Err: errors.New(r.redact(err.Error()))}
}

// remoteFail classifies a failed clone or fetch by git's message.
func (r *runner) remoteFail(op string, u repoURL, err error) *Error {
	text := strings.ToLower(errText(err))
	verb := map[string]string{"clone": "could not clone", "fetch": "could not fetch"}[op]
	head := fmt.Sprintf("%s %s", verb, u)
	var kind Kind
	var why string
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		kind, why = KindGit, "interrupted ("+err.Error()+")"
	case u.isSSH() && (strings.Contains(text, "permission denied") || strings.Contains(text, "host key verification failed")):
		kind, why = KindAuth, "ssh authentication failed: check the ssh keys in ~/.ssh (or set agent.git_user / agent.git_pass to use https)"
	case containsAny(text, "authentication failed", "could not read username", "could not read password",
		"terminal prompts disabled", "access denied", "http basic", " 401", " 403", "invalid credentials", "invalid username or password"):
		kind, why = KindAuth, "authentication failed: check agent.git_user / agent.git_pass"
	case containsAny(text, "repository not found", "not found", "does not appear to be a git repository", " 404", "does not exist"):
		kind, why = KindNotFound, "repository not found (or no access to it): check script.repository and the git credentials"
	case containsAny(text, "could not resolve host", "connection refused", "connection timed out", "timed out",
		"network is unreachable", "no route to host", "could not connect", "failed to connect", "ssl", "certificate"):
		kind, why = KindNetwork, "cannot reach the git server: check the network, proxy and certificates"
	default:
		kind, why = KindGit, "git failed"
	}
	return &Error{Kind: kind, Op: op, Reason: r.redact(fmt.Sprintf("%s: %s (%s)", head, why, excerpt(errText(err)))),
		Err: errors.New(r.redact(err.Error()))}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// excerpt shortens git's stderr to its last lines.
func excerpt(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > 600 {
		out = "..." + out[len(out)-600:]
	}
	return out
}

// checkRefFormat runs git check-ref-format --branch on a (pre-checked)
// branch or tag name.
func checkRefFormat(ctx context.Context, o Options, kind, name string) error {
	cmd := exec.CommandContext(ctx, o.git(), "check-ref-format", "--branch", name)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(os.TempDir()), "LC_ALL=C")
	cmd.Env = append(cmd.Env, o.ExtraEnv...)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return invalidf("invalid %s %q: not a valid git branch or tag name", kind, name)
		}
		return &Error{Kind: KindGit, Op: "validate", Reason: fmt.Sprintf("cannot run %s: %v", o.git(), err), Err: err}
	}
	return nil
}
