package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
)

// BuildBinary builds clearml-agent as it is released (CGO_ENABLED=0) from
// the Go module holding the working directory, into dir.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module to build: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("finding the module to build: not inside a Go module (run from the repository, or pass --binary)")
	}
	bin := filepath.Join(dir, "clearml-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/clearml-agent")
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building clearml-agent: %w\n%s", err, out)
	}
	return bin, nil
}

// proc is a child process the benchmark started; its output goes to a
// file. The goroutine waiting for it ends when it exits; stop waits for
// that.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

func startProc(bin string, env []string, logPath string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating a process log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s %s: %w", filepath.Base(bin), strings.Join(args, " "), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output is what the process wrote so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tail is the end of the output, for error messages.
func (p *proc) tail() string {
	out := strings.TrimSpace(p.output())
	if len(out) > 1500 {
		out = "..." + out[len(out)-1500:]
	}
	return out
}

// stop sends SIGTERM (twice for a daemon, which drains on the first), and
// kills the process if it has not exited after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace / 2):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace / 2):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stack is one scenario's set of processes and their folder; close stops
// the processes (last started first) and removes the folder.
type stack struct {
	dir   string
	bin   string
	procs []*proc
	n     int
}

func newStack(root, name, bin string) (*stack, error) {
	dir, err := os.MkdirTemp(root, name+"-")
	if err != nil {
		return nil, fmt.Errorf("creating the %s folder: %w", name, err)
	}
	return &stack{dir: dir, bin: bin}, nil
}

func (s *stack) close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop(20 * time.Second)
	}
	os.RemoveAll(s.dir)
}

func (s *stack) start(env []string, name string, args ...string) (*proc, error) {
	s.n++
	p, err := startProc(s.bin, env, filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", name, s.n)), args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// server is a `clearml-agent server` process and a client logged in to it.
type server struct {
	*proc
	url, conf      string
	access, secret string
	api            *apiclient.Client
}

var (
	listenRE = regexp.MustCompile(`listening on (http://\S+)`)
	keyRE    = func(k string) *regexp.Regexp { return regexp.MustCompile(`"` + k + `"\s*=\s*"([^"]*)"`) }
)

// startServer runs the server on a free loopback port with its own data
// folder (extra: e.g. --db DSN) and waits until it listens.
func (s *stack) startServer(ctx context.Context, extra ...string) (*server, error) {
	data := filepath.Join(s.dir, "server")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("creating the server folder: %w", err)
	}
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", data}, extra...)
	p, err := s.start(os.Environ(), "server", args...)
	if err != nil {
		return nil, err
	}
	srv := &server{proc: p, conf: filepath.Join(data, "clearml.conf")}
	deadline := time.Now().Add(60 * time.Second)
	for srv.url == "" {
		if m := listenRE.FindStringSubmatch(p.output()); m != nil {
			srv.url = m[1]
			break
		}
		if p.exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("starting the server: not listening: %s", p.tail())
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	conf, err := os.ReadFile(srv.conf)
	if err != nil {
		return nil, fmt.Errorf("reading the server's client configuration: %w", err)
	}
	access, secret := keyRE("access_key").FindStringSubmatch(string(conf)), keyRE("secret_key").FindStringSubmatch(string(conf))
	if access == nil || secret == nil {
		return nil, fmt.Errorf("reading the server's client configuration %s: no credentials", srv.conf)
	}
	srv.access, srv.secret = access[1], secret[1]
	if srv.api, err = newClient(ctx, srv.url, srv.access, srv.secret, nil); err != nil {
		return nil, err
	}
	return srv, nil
}

// newClient logs in to url; hc nil means apiclient's default transport.
func newClient(ctx context.Context, url, access, secret string, hc *http.Client) (*apiclient.Client, error) {
	c, err := apiclient.New(apiclient.Config{Server: url, AccessKey: access, SecretKey: secret, WorkerName: "agentbench", HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("creating an API client: %w", err)
	}
	if err := c.Login(ctx); err != nil {
		return nil, fmt.Errorf("logging in to %s: %w", url, err)
	}
	return c, nil
}

// daemonEnv gives a daemon private home, temp and cache folders (venvs
// under s.dir/venvs) and a worker name of its own.
func (s *stack) daemonEnv(name string) []string {
	for _, d := range []string{"tmp", "cache", "home"} {
		os.MkdirAll(filepath.Join(s.dir, d), 0o700)
	}
	return append(os.Environ(), "TMPDIR="+filepath.Join(s.dir, "tmp"), "XDG_CACHE_HOME="+filepath.Join(s.dir, "cache"),
		"HOME="+filepath.Join(s.dir, "home"), "CLEARML_WORKER_NAME="+name,
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH="+filepath.Join(s.dir, "venvs"),
		"CLEARML_AGENT__AGENT__VCS_CACHE__PATH="+filepath.Join(s.dir, "vcs"),
		"CLEARML_AGENT__AGENT__DOCKER_INSTALL_OPENCV_LIBS=false")
}

// startDaemon runs `clearml-agent daemon --foreground ARGS` against srv
// and waits until its worker is registered (or the daemon exits: the
// error then holds its output).
func (s *stack) startDaemon(ctx context.Context, srv *server, name string, extraEnv []string, args ...string) (*proc, error) {
	argv := append([]string{"--config-file", srv.conf, "daemon", "--foreground"}, args...)
	p, err := s.start(append(s.daemonEnv(name), extraEnv...), "daemon", argv...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			return p, &daemonExited{out: p.tail()}
		}
		if ok, err := workerRegistered(ctx, srv.api, name); err != nil {
			return p, err
		} else if ok {
			break
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("starting the daemon: no worker %s after 60 s: %s", name, p.tail())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return p, err
		}
	}
	// Registered; give it the moment to enter its long poll.
	return p, sleep(ctx, 500*time.Millisecond)
}

// daemonExited is a daemon that ended before it registered: it refused
// its command line, say.
type daemonExited struct{ out string }

func (e *daemonExited) Error() string { return "the daemon exited at start: " + e.out }

func workerRegistered(ctx context.Context, c *apiclient.Client, name string) (bool, error) {
	var resp struct {
		Workers []struct {
			ID string `json:"id"`
		} `json:"workers"`
	}
	if err := c.Call(ctx, "", "workers.get_all", map[string]any{}, &resp, apiclient.Default); err != nil {
		return false, fmt.Errorf("listing workers: %w", err)
	}
	for _, w := range resp.Workers {
		if strings.HasPrefix(w.ID, name+":") || w.ID == name {
			return true, nil
		}
	}
	return false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
