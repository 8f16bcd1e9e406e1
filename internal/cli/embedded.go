package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/server"
)

// embeddedMarker is the first line of a ~/clearml.conf written for the
// embedded default; such a file keeps meaning "use the embedded server".
const embeddedMarker = "# clearml-agent embedded default"

// EmbeddedListenEnv overrides the embedded server's address.
const EmbeddedListenEnv = "CLEARML_AGENT_EMBEDDED_LISTEN"

// wantsEmbedded reports whether there is no configuration at all (no
// --config-file, no config file variables, no ~/clearml.conf or
// ~/trains.conf other than one we wrote for the embedded default, no
// CLEARML_API_HOST): then the daemon runs the embedded server itself.
func wantsEmbedded(g args.Global) bool {
	if g.ConfigFile != "" {
		return false
	}
	for _, v := range []string{"CLEARML_CONFIG_FILE", "TRAINS_CONFIG_FILE", "CLEARML_API_HOST", "TRAINS_API_HOST", "CLEARML_CONFIG_PATH"} {
		if os.Getenv(v) != "" {
			return false
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(home, "trains.conf")); err == nil {
		return false
	}
	raw, err := os.ReadFile(filepath.Join(home, "clearml.conf"))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && strings.HasPrefix(string(raw), embeddedMarker)
}

// embedded is the in-process server of the embedded default.
type embedded struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

// startEmbedded runs the embedded server in this process and returns the
// path of its client configuration. It also writes ~/clearml.conf for
// other clients (the SDK, the upstream agent) unless one exists.
func startEmbedded(log *slog.Logger, out io.Writer) (*embedded, string, error) {
	listen := os.Getenv(EmbeddedListenEnv)
	if listen == "" {
		listen = "127.0.0.1:8008"
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &embedded{cancel: cancel}
	started := make(chan server.Started, 1)
	e.wg.Go(func() {
		e.err = server.Run(ctx, server.RunConfig{Listen: listen, DataDir: server.DefaultDataDir()}, log.With("component", "server"),
			func(s server.Started) { started <- s })
		close(started)
	})
	s, ok := <-started
	if !ok {
		e.wg.Wait()
		cancel()
		return nil, "", fmt.Errorf("starting the embedded server on %s (set %s to use another address, or point the daemon at a server with --config-file): %w",
			listen, EmbeddedListenEnv, e.err)
	}
	home, _ := os.UserHomeDir()
	userConf := filepath.Join(home, "clearml.conf")
	wrote := ""
	if _, err := os.Stat(userConf); errors.Is(err, os.ErrNotExist) {
		raw, err := os.ReadFile(s.ClientConfig)
		if err == nil && os.WriteFile(userConf, append([]byte(embeddedMarker+": the daemon runs this server in-process\n"), raw...), 0o600) == nil {
			wrote = "; wrote " + userConf + " for other clients"
		}
	}
	fmt.Fprintf(out, "No ClearML configuration found: running the embedded server at %s (data in %s, web UI at %s/)%s\n",
		s.URL, server.DefaultDataDir(), s.WebURL, wrote)
	return e, s.ClientConfig, nil
}

// stop shuts the embedded server down and waits for it.
func (e *embedded) stop() {
	e.cancel()
	e.wg.Wait()
}
