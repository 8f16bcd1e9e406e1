package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/hocon"
	"github.com/goclearml/agent/internal/server"
)

// embeddedMarker is the first line of a ~/clearml.conf written for the
// embedded default. Such a file is an ordinary configuration (every
// setting in it applies); the marker only says that the server it names
// is the embedded one, which a daemon starts when nobody serves it yet.
const embeddedMarker = "# clearml-agent embedded default"

// EmbeddedListenEnv overrides the embedded server's address for a first
// start (afterwards ~/clearml.conf's api_server says where it is).
const EmbeddedListenEnv = "CLEARML_AGENT_EMBEDDED_LISTEN"

// embeddedHeader starts the ~/clearml.conf written for the embedded
// default; it tells the reader what the file is and what editing does.
const embeddedHeader = embeddedMarker + `: written by "clearml-agent daemon" when it found no configuration.
# Every setting here applies to the daemon, the clearml-agent commands and the ClearML SDK: add agent { ... }
# settings as in any clearml.conf. While api_server below is the embedded server's address, a daemon started
# on this machine serves it itself (data in ~/.clearml/agent-server) when nothing answers there yet, and
# joins the running one otherwise; to run the server without a daemon: "clearml-agent server".
# To use another ClearML server, set api_server, web_server, files_server and the credentials to its
# own: the embedded server is then not started. Keep this file private (mode 0600): it holds a secret.
`

// embeddedSetup says how the embedded default applies to this command.
type embeddedSetup struct {
	userConf string // ~/clearml.conf
	fresh    bool   // it does not exist yet: written once the server runs
	listen   string // host:port the embedded server listens on
	url      string // http://listen
	dataDir  string
}

// baseConf is the embedded server's own client configuration, which fills
// in what ~/clearml.conf leaves out.
func (s *embeddedSetup) baseConf() string { return filepath.Join(s.dataDir, "clearml.conf") }

// planEmbedded decides whether the embedded default applies: there is no
// configuration at all (no --config-file, no configuration variables, no
// ~/clearml.conf or ~/trains.conf), or ~/clearml.conf is the one written
// for it and its api_server is still the embedded server's (or left out).
// nil means a configuration names the server to use. A ~/clearml.conf
// that cannot be parsed is an error with its line.
func planEmbedded(g args.Global) (*embeddedSetup, error) {
	if g.ConfigFile != "" {
		return nil, nil
	}
	for _, v := range []string{"CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE", "CLEARML_API_HOST", "TRAINS_API_HOST", "CLEARML_CONFIG_PATH"} {
		if os.Getenv(v) != "" {
			return nil, nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(home, "trains.conf")); err == nil {
		return nil, nil
	}
	s := &embeddedSetup{userConf: filepath.Join(home, "clearml.conf"), dataDir: server.DefaultDataDir()}
	raw, err := os.ReadFile(s.userConf)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.fresh = true
		s.listen = os.Getenv(EmbeddedListenEnv)
		if s.listen == "" {
			s.listen = "127.0.0.1:8008"
		}
		s.url = "http://" + s.listen
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", s.userConf, err)
	case !strings.HasPrefix(string(raw), embeddedMarker):
		return nil, nil
	}
	tree, err := hocon.ParseWithEnv(s.userConf, raw, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("loading configuration: %w", err)
	}
	// The embedded server's address: where its own client configuration
	// says it serves, else where a first start puts it.
	own := "http://" + cmp.Or(os.Getenv(EmbeddedListenEnv), "127.0.0.1:8008")
	if b, err := hocon.ParseWithEnv(s.baseConf(), readOrEmpty(s.baseConf()), os.LookupEnv); err == nil {
		own = cmp.Or(b.String("api.api_server", ""), own)
	}
	own = strings.TrimRight(own, "/")
	apiServer := strings.TrimRight(strings.TrimSpace(cmp.Or(tree.String("api.api_server", ""), tree.String("api.host", ""), own)), "/")
	u, err := url.Parse(apiServer)
	if apiServer != own || err != nil || u.Scheme != "http" || !isLoopbackHost(u.Hostname()) {
		return nil, nil // another server: followed as any configuration
	}
	s.listen = u.Host
	if u.Port() == "" {
		s.listen = net.JoinHostPort(u.Hostname(), "80")
	}
	s.url = apiServer
	return s, nil
}

func readOrEmpty(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// embedded is the daemon's share of the embedded server: it runs it in
// this process, or it joined one that another process runs and takes it
// over when that process goes away.
type embedded struct {
	setup  *embeddedSetup
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	serving bool   // this process runs the server now
	webURL  string // the web UI, when this process serves it
}

// startEmbedded makes sure the embedded server runs, in this process or
// in another one, writes ~/clearml.conf for a first start, and says in one
// line what it found and did.
func startEmbedded(s *embeddedSetup, log *slog.Logger, say func(string)) (*embedded, error) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &embedded{setup: s, log: log, ctx: ctx, cancel: cancel}
	what, err := e.serveOrJoin(30 * time.Second)
	if err != nil {
		e.stop()
		return nil, err
	}
	wrote := ""
	if s.fresh {
		if err := writeUserConf(s); err != nil {
			e.stop()
			return nil, err
		}
		wrote = "; wrote " + s.userConf + " for other clients (edit it to change settings)"
	}
	found := "Using " + s.userConf + " (embedded default)"
	if s.fresh {
		found = "No ClearML configuration found"
	}
	e.mu.Lock()
	web := cmp.Or(e.webURL, s.url)
	e.mu.Unlock()
	say(fmt.Sprintf("%s: %s (data in %s, web UI at %s/)%s", found, what, s.dataDir, strings.TrimRight(web, "/"), wrote))
	if !e.isServing() {
		e.wg.Go(e.takeOver)
	}
	return e, nil
}

// serveOrJoin joins a server that answers at the address, else starts
// one here; when another process is just starting one on the same data,
// it waits for that one. It returns what happened, in words.
func (e *embedded) serveOrJoin(wait time.Duration) (string, error) {
	s := e.setup
	if h, ok := server.DataDirHolder(s.dataDir); ok || pingServer(e.ctx, s.url) == nil {
		if err := waitServer(e.ctx, s.url, wait); err != nil {
			return "", fmt.Errorf("the embedded server at %s (pid %d, data in %s) does not answer: %w", s.url, h.PID, s.dataDir, err)
		}
		pid := ""
		if ok {
			pid = fmt.Sprintf(" (pid %d)", h.PID)
		}
		return "joined the embedded server already running at " + s.url + pid, nil
	}
	err := e.serve()
	var busy *server.BusyError
	if errors.As(err, &busy) {
		// Another daemon started it a moment ago: join that one.
		if err := waitServer(e.ctx, s.url, wait); err != nil {
			return "", fmt.Errorf("%v; and it does not answer at %s: %w", busy, s.url, err)
		}
		return fmt.Sprintf("joined the embedded server already running at %s (pid %d)", s.url, busy.Holder.PID), nil
	}
	if err != nil {
		return "", err
	}
	return "running the embedded server at " + s.url, nil
}

// serve starts the server in this process and returns once it accepts
// connections, or with the reason it could not start.
func (e *embedded) serve() error {
	s := e.setup
	started := make(chan struct{})
	done := make(chan error, 1)
	e.wg.Go(func() {
		err := server.Run(e.ctx, server.RunConfig{Listen: s.listen, PublicURL: s.url, DataDir: s.dataDir}, e.log.With("component", "server"),
			func(st server.Started) {
				e.mu.Lock()
				e.webURL = st.WebURL
				e.mu.Unlock()
				close(started)
			})
		e.mu.Lock()
		e.serving = false
		e.mu.Unlock()
		done <- err
	})
	select {
	case <-started:
		e.mu.Lock()
		e.serving = true
		e.mu.Unlock()
		return nil
	case err := <-done:
		var busy *server.BusyError
		if errors.As(err, &busy) {
			return err
		}
		return fmt.Errorf("starting the embedded server at %s (data in %s): %w; if another program uses that address, set api_server in %s to a free loopback address (or %s before the first start)",
			s.url, s.dataDir, err, s.userConf, EmbeddedListenEnv)
	}
}

func (e *embedded) isServing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.serving
}

// takeOver watches the process that runs the server this daemon joined:
// when it is gone (its data-folder lock is free), this daemon serves the
// same data at the same address, so the daemons on this machine go on.
func (e *embedded) takeOver() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		if e.isServing() {
			continue
		}
		if _, held := server.DataDirHolder(e.setup.dataDir); held {
			continue
		}
		if err := e.serve(); err == nil {
			e.log.Warn("the process that ran the embedded server is gone; this daemon runs it now", "url", e.setup.url)
		}
	}
}

// stop shuts the server down (when it runs here) and waits.
func (e *embedded) stop() {
	e.cancel()
	e.wg.Wait()
}

// writeUserConf writes ~/clearml.conf from the embedded server's client
// configuration, unless a file appeared there meanwhile.
func writeUserConf(s *embeddedSetup) error {
	raw, err := os.ReadFile(s.baseConf())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("a server answers at %s, but not on the embedded server's data (%s has no client configuration): "+
			"set %s to a free address, or write %s for that server", s.url, s.dataDir, EmbeddedListenEnv, s.userConf)
	}
	if err != nil {
		return fmt.Errorf("reading the embedded server's client configuration: %w", err)
	}
	body := string(raw)
	// Drop the server's own header comment: ours says what this file is.
	for strings.HasPrefix(body, "#") {
		_, body, _ = strings.Cut(body, "\n")
	}
	f, err := os.OpenFile(s.userConf, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", s.userConf, err)
	}
	if _, err := f.WriteString(embeddedHeader + body); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", s.userConf, err)
	}
	return f.Close()
}

// pingServer checks that a ClearML server answers at base.
func pingServer(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug.ping", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/debug.ping answered HTTP %d: not a ClearML server", base, resp.StatusCode)
	}
	return nil
}

// waitServer waits until a server answers at base.
func waitServer(ctx context.Context, base string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		err := pingServer(ctx, base)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}
