// Package pgtest gives tests a real, throwaway PostgreSQL server.
//
// It runs the locally installed PostgreSQL server binaries (initdb and
// postgres) against a fresh data directory in a temporary directory, on a
// free TCP port on 127.0.0.1, with durability switched off for speed. The
// server runs as a child of the test binary and is killed when the test
// binary dies, and Stop removes the temporary directory.
//
// Most tests only need NewDatabase, which starts one shared cluster per test
// binary on first use and hands every caller a fresh, empty database:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pgtest.Cleanup()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		db, err := sql.Open("pgx", pgtest.NewDatabase(t))
//		...
//	}
//
// When the server binaries are not installed, NewDatabase skips the test
// with a message that says what is missing and how to fix it.
//
// Environment variables:
//
//	PGTEST_BIN_DIR  directory holding initdb and postgres; overrides the search
//	                (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH, ...).
//	PGTEST_DSN      DSN of an existing server on which the user may CREATE
//	                DATABASE; NewDatabase then creates its databases there
//	                (and drops them when the test ends) instead of starting a
//	                cluster.
//
// initdb refuses to run as root, so when the test runs as root the server
// binaries run as the "postgres" system user, and the temporary directory is
// handed to that user.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is wrapped by the error Start returns when the PostgreSQL
// server binaries cannot be found. NewDatabase skips the test in that case.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

const (
	superuser      = "postgres"
	readyTimeout   = 30 * time.Second
	stopTimeout    = 10 * time.Second
	dirPrefix      = "pgtest-"
	ownerFile      = "owner.pid"
	logName        = "postgres.log"
	maxStartTries  = 3
	logTailBytes   = 4096
	maxSocketDirLn = 90 // sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN"
)

// Cluster is one running throwaway server.
type Cluster struct {
	binDir  string
	root    string // temporary directory; removed by Stop
	dataDir string
	logPath string
	port    int

	cmd     *exec.Cmd
	done    chan struct{} // closed when the postgres process has exited
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start initialises a new cluster in a fresh temporary directory under
// os.TempDir() and starts a server for it. ctx bounds the start only; the
// server keeps running until Stop (or until the test binary exits).
//
// If the server binaries are not installed the error wraps ErrNotInstalled.
func Start(ctx context.Context) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	owner, err := serverUser()
	if err != nil {
		return nil, err
	}
	base, err := tempBase(owner)
	if err != nil {
		return nil, err
	}
	sweepStale(base)

	root, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{
		binDir:  binDir,
		root:    root,
		dataDir: filepath.Join(root, "data"),
		logPath: filepath.Join(root, "data", logName),
	}
	if err := c.start(ctx, owner); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, owner *account) error {
	// Record who owns this directory, so that a later Start can remove it if
	// this process dies without calling Stop.
	if err := os.WriteFile(filepath.Join(c.root, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if owner != nil {
		if err := os.Chown(c.root, int(owner.uid), int(owner.gid)); err != nil {
			return fmt.Errorf("pgtest: handing %s to user %s: %w", c.root, owner.name, err)
		}
	}

	initdb := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir,
		"-A", "trust",
		"-U", superuser,
		"--no-sync",
		"-E", "UTF8",
		"--locale=C",
	)
	initdb.Dir = c.root
	initdb.Env = childEnv()
	initdb.SysProcAttr = sysProcAttr(owner, false)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb in %s as %s failed: %w\n%s", c.dataDir, owner, err, tail(out))
	}

	var lastErr error
	for try := 0; try < maxStartTries; try++ {
		err := c.startServer(ctx, owner)
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) || ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

var errPortInUse = errors.New("port already in use")

// startServer starts postgres on a newly picked port and waits until it
// accepts connections. On failure the process has exited.
func (c *Cluster) startServer(ctx context.Context, owner *account) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port

	socketDir := c.root
	if len(socketDir) > maxSocketDirLn {
		socketDir = "" // no unix socket at all; TCP only
	}

	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close() // the child has its own copy

	cmd := exec.Command(filepath.Join(c.binDir, "postgres"),
		"-D", c.dataDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+socketDir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	)
	cmd.Dir = c.root
	cmd.Env = childEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr(owner, true)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func(done chan struct{}) {
		c.waitErr = cmd.Wait()
		close(done)
	}(c.done)

	if err := c.waitReady(ctx); err != nil {
		c.kill()
		log := c.logTail()
		if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, c.logPath, log)
	}
	return nil
}

// waitReady polls the server until a connection succeeds, the process
// exits, ctx is done or readyTimeout passes.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	delay := 10 * time.Millisecond
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case <-c.done:
			return fmt.Errorf("pgtest: postgres exited during start-up (%v)", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres on port %d not ready: %w (last error: %v)", c.port, ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// DSN returns the URL for database dbname on this cluster as the superuser.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		superuser, c.port, url.PathEscape(dbname))
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the temporary directory holding the cluster; Stop removes it.
func (c *Cluster) Dir() string { return c.root }

// LogPath is the file that receives the server's stdout and stderr.
func (c *Cluster) LogPath() string { return c.logPath }

// CreateDatabase creates an empty database called name and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := createDatabase(ctx, c.DSN("postgres"), name); err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

func createDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("pgtest: connecting to create database %q: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgtest: creating database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down immediately (SIGQUIT, then SIGKILL if it does
// not exit within 10 seconds) and removes the temporary directory. It is
// safe to call more than once; later calls return the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.kill()
		if c.root != "" {
			if err := os.RemoveAll(c.root); err != nil {
				c.stopErr = fmt.Errorf("pgtest: removing %s: %w", c.root, err)
			}
		}
	})
	return c.stopErr
}

// kill stops the postgres process, if any, and waits for it to exit.
func (c *Cluster) kill() {
	if c.cmd == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	// SIGQUIT is PostgreSQL's "immediate shutdown": the postmaster takes its
	// children down and exits without a checkpoint.
	if err := c.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		c.cmd.Process.Kill()
	}
	select {
	case <-c.done:
		return
	case <-time.After(stopTimeout):
	}
	c.cmd.Process.Kill()
	<-c.done
}

func (c *Cluster) logTail() string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		f.Seek(fi.Size()-logTailBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(tail(b))
}

func tail(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return b
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before postgres binds it; Start retries in that case.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port, nil
}

// childEnv is the environment for initdb and postgres: ours, without PG*
// variables (PGDATA, PGPORT, ... would change their behaviour) and with
// untranslated messages.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_ALL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb and postgres). It uses $PGTEST_BIN_DIR if set, otherwise the first
// of: pg_config --bindir, the newest /usr/lib/postgresql/*/bin,
// /usr/pgsql-*/bin, /usr/local/pgsql/bin and the directory of initdb on PATH.
// When none has both binaries the error wraps ErrNotInstalled.
func FindBinDir() (string, error) {
	if dir := os.Getenv("PGTEST_BIN_DIR"); dir != "" {
		if missing := missingBinaries(dir); len(missing) > 0 {
			return "", fmt.Errorf("pgtest: PGTEST_BIN_DIR=%s lacks %s", dir, strings.Join(missing, ", "))
		}
		return dir, nil
	}

	var candidates []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			candidates = append(candidates, strings.TrimSpace(string(out)))
		}
	}
	for _, pattern := range searchDirs {
		if strings.Contains(pattern, "*") {
			candidates = append(candidates, newestFirst(pattern)...)
		} else if _, err := os.Stat(pattern); err == nil {
			candidates = append(candidates, pattern)
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		candidates = append(candidates, filepath.Dir(p))
	}

	var looked []string
	for _, dir := range candidates {
		missing := missingBinaries(dir)
		if len(missing) == 0 {
			return dir, nil
		}
		looked = append(looked, fmt.Sprintf("%s (no %s)", dir, strings.Join(missing, ", ")))
	}
	where := "pg_config and initdb are not on PATH and none of " + strings.Join(searchDirs, ", ") + " exists"
	if len(looked) > 0 {
		where = "looked in " + strings.Join(looked, "; ")
	}
	return "", fmt.Errorf("pgtest: %w: install postgresql-15 (Debian/Ubuntu: apt-get install postgresql-15), "+
		"or set PGTEST_BIN_DIR to the directory holding initdb and postgres, "+
		"or set PGTEST_DSN to a server where CREATE DATABASE is allowed; %s", ErrNotInstalled, where)
}

// searchDirs are where FindBinDir looks after pg_config; "*" stands for a
// version number, newest tried first.
var searchDirs = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"}

func missingBinaries(dir string) []string {
	var missing []string
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	return missing
}

// newestFirst expands pattern, a glob with one * standing for a version,
// sorted by descending numeric version.
func newestFirst(pattern string) []string {
	dirs, _ := filepath.Glob(pattern)
	prefix := pattern[:strings.Index(pattern, "*")]
	version := func(dir string) []int {
		s := strings.TrimPrefix(dir, prefix)
		if i := strings.IndexByte(s, '/'); i >= 0 {
			s = s[:i]
		}
		var v []int
		for _, part := range strings.Split(s, ".") {
			n, _ := strconv.Atoi(part)
			v = append(v, n)
		}
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		a, b := version(dirs[i]), version(dirs[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
	return dirs
}

// tempBase is the directory to create the cluster's temporary directory in:
// os.TempDir(), or /tmp when the server runs as another user that cannot
// reach os.TempDir().
func tempBase(owner *account) (string, error) {
	base := os.TempDir()
	if owner == nil || owner.canTraverse(base) {
		return base, nil
	}
	if owner.canTraverse("/tmp") {
		return "/tmp", nil
	}
	return "", fmt.Errorf("pgtest: user %s cannot reach %s (nor /tmp); set TMPDIR to a directory every user can traverse", owner.name, base)
}

// sweepStale removes temporary directories left in base by test binaries
// that died without calling Stop. A directory is removed only when the
// process that created it no longer exists and no postgres is running in it.
func sweepStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && processAlive(pm) {
				continue
			}
		}
		os.RemoveAll(dir)
	}
}
