// Package testbin builds the clearml-agent binary once per test process,
// for end-to-end tests that run it as a real process.
package testbin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testwait"
)

var (
	once     sync.Once
	binPath  string
	buildErr error
	tmpDir   string
)

// Path returns the path of a freshly built clearml-agent binary (CGO off,
// as released). The build is shared by every test of the process.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		// A prebuilt binary (for machines without a Go toolchain, such as
		// a borrowed GPU host).
		if p := os.Getenv("CLEARML_AGENT_TEST_BINARY"); p != "" {
			binPath, buildErr = filepath.Abs(p)
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		tmpDir, buildErr = os.MkdirTemp("", "clearml-agent-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(tmpDir, "clearml-agent")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/clearml-agent")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building clearml-agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Cleanup removes the built binary; call it from TestMain.
func Cleanup() {
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
}

// Server is a `clearml-agent server` process.
type Server struct {
	URL        string
	ConfigPath string
	AccessKey  string
	SecretKey  string
	cmd        *exec.Cmd
	done       chan error
}

var listenLine = regexp.MustCompile(`listening on (http://\S+)`)

// StartServer runs `clearml-agent server` with a random port and the given
// extra arguments, waits until it listens, and stops it when the test ends.
func StartServer(t testing.TB, dataDir string, extra ...string) *Server {
	t.Helper()
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	cmd := exec.Command(Path(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dataDir, "server.log"))
	if err != nil {
		os.MkdirAll(dataDir, 0o700)
		if logf, err = os.Create(filepath.Join(dataDir, "server.log")); err != nil {
			t.Fatal(err)
		}
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting server: %v", err)
	}
	s := &Server{cmd: cmd, done: make(chan error, 1), ConfigPath: filepath.Join(dataDir, "clearml.conf")}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				urls <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { s.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { s.Stop() })
	select {
	case s.URL = <-urls:
	case err := <-s.done:
		log, _ := os.ReadFile(filepath.Join(dataDir, "server.log"))
		t.Fatalf("server exited before listening: %v\n%s", err, log)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start within 60 s")
	}
	conf, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatalf("reading client config: %v", err)
	}
	s.AccessKey = ConfValue(string(conf), "access_key")
	s.SecretKey = ConfValue(string(conf), "secret_key")
	return s
}

// ConfValue reads a quoted value ("key" = "value") from a clearml.conf the
// server wrote.
func ConfValue(conf, key string) string {
	m := regexp.MustCompile(`"` + key + `"\s*=\s*"([^"]*)"`).FindStringSubmatch(conf)
	if m == nil {
		return ""
	}
	return m[1]
}

// Stop sends SIGTERM and waits for the process (killing it after 15 s).
func (s *Server) Stop() error {
	if s.cmd.Process == nil {
		return nil
	}
	s.cmd.Process.Signal(os.Interrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil && !strings.Contains(err.Error(), "signal") {
			return err
		}
		return nil
	case <-ctx.Done():
		s.cmd.Process.Kill()
		return fmt.Errorf("server did not stop within 15 s")
	}
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Process is a running clearml-agent process other than the server.
type Process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	LogPath string
}

// Start runs the binary with args and extra environment (added to the
// test's own), output to LogPath. The process is killed when the test
// ends if it still runs.
func Start(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "process-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Path(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), LogPath: logf.Name()}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to d for the process to exit and returns its exit code
// (-1 on timeout).
func (p *Process) Wait(d time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// Output returns what the process wrote so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// StartServerAt is StartServer on a fixed address, so that a test can
// restart the server where clients expect it.
func StartServerAt(t testing.TB, dataDir, listen string, extra ...string) *Server {
	t.Helper()
	return StartServer(t, dataDir, append([]string{"--listen", listen}, extra...)...)
}

// WaitOutput waits up to d until the process's output contains want, and
// fails the test (with the output) when it does not.
func (p *Process) WaitOutput(t testing.TB, want string, d time.Duration) {
	t.Helper()
	exited := false
	found := testwait.For(d, func() bool {
		if strings.Contains(p.Output(), want) {
			return true
		}
		select {
		case <-p.done:
			exited = true
			return true // nothing more will come
		default:
			return false
		}
	})
	switch {
	case found && strings.Contains(p.Output(), want):
	case exited:
		t.Fatalf("the process exited without printing %q:\n%s", want, p.Output())
	default:
		t.Fatalf("no %q in the output within %v:\n%s", want, d, p.Output())
	}
}

// Run runs the binary to completion (at most d) and returns its exit
// code, its standard output and its standard error.
func Run(t testing.TB, env []string, d time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bin := Path(t) // built first: the build is not the command's time
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within %v:\n%s%s", args, d, out.String(), errOut.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("running %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
