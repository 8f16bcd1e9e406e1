package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/clientconf"
	"github.com/goclearml/agent/internal/fileserver"
	"github.com/goclearml/agent/internal/gcfloor"
	"github.com/goclearml/agent/internal/httpguard"
	"github.com/goclearml/agent/internal/memtrim"
	"github.com/goclearml/agent/internal/store"
)

// RunConfig configures a complete server process.
type RunConfig struct {
	// Listen is the address to listen on (127.0.0.1:8008).
	Listen string
	// PublicURL is the API address clients use, written into the client
	// configuration; empty: the listening address, or this host's first
	// non-loopback address when listening on all interfaces.
	PublicURL string
	// DataDir holds the SQLite database and the client configuration.
	DataDir string
	// DB is a PostgreSQL URL; empty means SQLite in DataDir.
	DB string
	// SQLiteSync is SQLite's synchronous setting, "normal" or "full" (see
	// store.Options).
	SQLiteSync string
	// Watchdog configures the non-responsive task watchdog.
	Watchdog WatchdogOptions
	// Files configures the file server.
	Files FilesConfig
	// UI configures the web UI.
	UI      UIConfig
	Options Options
}

// Started describes a running server.
type Started struct {
	// URL is the API address clients use.
	URL string
	// FilesURL is the file server's address (files_server), or URL when
	// the file server is off.
	FilesURL string
	// WebURL is the web UI's address (web_server), or URL without a UI.
	WebURL string
	// ClientConfig is the path of the client configuration file.
	ClientConfig string
	// CreatedConfig is true when this start wrote that file.
	CreatedConfig bool
}

// DefaultDataDir is the data folder under the user's home.
func DefaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".clearml", "agent-server")
}

// Run opens the store, bootstraps it, writes the client configuration if
// there is none, and serves until ctx is done; then it shuts down
// gracefully. started is called once the server accepts connections.
func Run(ctx context.Context, cfg RunConfig, log *slog.Logger, started func(Started)) error {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8008"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data folder: %w", err)
	}
	dsn := cfg.DB
	var lock *dataDirLock
	if dsn == "" {
		// One server process per SQLite database: a second one would
		// stall on SQLite's lock; it is told who has the folder instead.
		var err error
		if lock, err = lockDataDir(cfg.DataDir); err != nil {
			return err
		}
		defer lock.release()
		dsn = filepath.Join(cfg.DataDir, "clearml.db")
	}
	if err := privateDataFiles(cfg.DataDir, cfg.DB == "", log.Warn); err != nil {
		return err
	}
	st, err := store.OpenWith(ctx, dsn, store.Options{SQLiteSync: cfg.SQLiteSync})
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer st.Close()
	if err := Bootstrap(ctx, st); err != nil {
		return fmt.Errorf("preparing database: %w", err)
	}
	srv, err := New(st, log, cfg.Options)
	if err != nil {
		return err
	}
	var handler http.Handler = srv
	var files http.Handler
	if !cfg.Files.Disabled {
		blobs, closeBlobs, err := cfg.Files.openBlobs(ctx, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("opening the file server's storage: %w", err)
		}
		defer closeBlobs()
		fc := fileserver.Config{Blobs: blobs, MaxUploadBytes: cfg.Files.MaxUploadBytes, Log: log.With("component", "files")}
		if !cfg.Files.NoAuth {
			fc.Authorize = srv.Authorize
		}
		files = fileserver.New(fc)
		if cfg.Files.Listen == "" {
			handler = srv.WithFiles(DefaultFilesPrefix, files)
		}
	}
	handler = withHealth(handler, st, srv.Draining)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	url := cfg.PublicURL
	if url == "" {
		url = advertisedURL(ln.Addr())
	}
	url = strings.TrimRight(url, "/")
	info := Started{URL: url, FilesURL: url, WebURL: url, ClientConfig: filepath.Join(cfg.DataDir, "clearml.conf")}
	servers := []*http.Server{newHTTPServer(handler, log)}
	listeners := []net.Listener{httpguard.LimitPerClient(ln, maxConnsPerClient)}
	switch {
	case files != nil && cfg.Files.Listen != "":
		fln, err := net.Listen("tcp", cfg.Files.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s for files: %w", cfg.Files.Listen, err)
		}
		info.FilesURL = "http://" + fln.Addr().String()
		servers = append(servers, newHTTPServer(files, log))
		listeners = append(listeners, httpguard.LimitPerClient(fln, maxConnsPerClient))
	case files != nil:
		info.FilesURL = url + DefaultFilesPrefix
	}
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	if !cfg.UI.Disabled {
		if servers[0].Handler, info.WebURL, err = mountUI(ctx, cfg.UI, srv, files, info.FilesURL, url, handler, log); err != nil {
			closeAll()
			return err
		}
	}
	if info.CreatedConfig, err = ensureClientConfig(ctx, st, info, url, log); err != nil {
		closeAll()
		return err
	}
	if lock != nil {
		if err := lock.record(url); err != nil {
			closeAll()
			return err
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { srv.RunWatchdog(runCtx, cfg.Watchdog) })
	wg.Go(func() { srv.RunLeases(runCtx) })
	// The pages of the binary the start touched and the server does not
	// use go back once it is up.
	wg.Go(func() { memtrim.After(runCtx, log) })
	wg.Go(func() { gcfloor.Run(runCtx, heapFloor) })
	serveErr := make(chan error, len(servers))
	for i, hs := range servers {
		wg.Go(func() { serveErr <- hs.Serve(listeners[i]) })
	}
	log.Info("server listening", "url", url, "files", info.FilesURL, "ui", info.WebURL, "database", st.Dialect())
	if started != nil {
		started(info)
	}
	var result error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			result = fmt.Errorf("serving: %w", err)
		}
	}
	// Fail the health check and end the long polls first, so that the
	// load balancer's retries and the clients' next polls go elsewhere.
	srv.Drain()
	// Shut down on a context the cancellation cannot reach: in-flight calls
	// (a final status report, say) get a few seconds to finish.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	}
	cancel()
	wg.Wait()
	return result
}

// Limits of the listeners against clients that hold connections: the
// headers must arrive within headerTimeout and be at most maxHeaderBytes
// (bodies have their own minimum rate, Options.BodyMinRate), and one
// client address holds at most maxConnsPerClient connections (a daemon in
// services mode with its tasks' SDKs uses a few dozen).
const (
	headerTimeout     = 10 * time.Second
	maxHeaderBytes    = 64 << 10
	maxConnsPerClient = 256
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// advertisedURL is the URL clients use for a listener: its own address,
// unless it listens on every interface (0.0.0.0, ::), which no client can
// connect to from another machine; then this host's first non-loopback
// address (its name when it has none).
func advertisedURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + a.String()
	}
	port := strconv.Itoa(tcp.Port)
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return "http://" + net.JoinHostPort(n.IP.String(), port)
			}
		}
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		return "http://" + net.JoinHostPort(host, port)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port)
}

// heapFloor is the heap below which a busy server does not collect
// garbage (package gcfloor): its live heap is a few MiB, and at Go's
// default it collected ten times a second on the queue path.
const heapFloor = 32 << 20

// ensureClientConfig writes the clearml.conf of the server's clients
// (info.ClientConfig) with new credentials where there is none, and says
// so. An existing one written before there was a file server (or a web
// UI under a prefix) points files_server (web_server) at the API address
// url: it is pointed at the files (the UI).
func ensureClientConfig(ctx context.Context, st store.Store, info Started, url string, log *slog.Logger) (created bool, err error) {
	_, err = os.Stat(info.ClientConfig)
	if errors.Is(err, os.ErrNotExist) {
		cr, err := CreateCredentials(ctx, st, "")
		if err != nil {
			return false, fmt.Errorf("creating credentials: %w", err)
		}
		err = clientconf.Write(info.ClientConfig, clientconf.Client{APIServer: url, WebServer: info.WebURL, FilesServer: info.FilesURL,
			AccessKey: cr.AccessKey, SecretKey: cr.SecretKey})
		return err == nil, err
	}
	if err == nil {
		for _, u := range []struct{ key, to string }{{"files_server", info.FilesURL}, {"web_server", info.WebURL}} {
			if u.to == url {
				continue
			}
			if changed, err := clientconf.UpdateServer(info.ClientConfig, u.key, url, u.to); err != nil {
				log.Warn("updating the client configuration", "path", info.ClientConfig, "key", u.key, "err", err)
			} else if changed {
				log.Info("client configuration updated", "path", info.ClientConfig, u.key, u.to)
			}
		}
	}
	return false, nil
}
