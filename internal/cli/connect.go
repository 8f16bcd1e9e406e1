package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
)

// cliLogin is how long a command-line tool tries to reach the server
// before it says it cannot: a few seconds, not a daemon's patience.
var cliLogin = apiclient.Policy{MaxAttempts: 4, MaxElapsed: 4 * time.Second, InitialBackoff: 300 * time.Millisecond, MaxBackoff: time.Second}

// connect loads the configuration as the daemon does and logs in. Retries
// are not shown (everything is with --debug); an unreachable server is one
// line that names it.
func connect(ctx context.Context, g args.Global, stderr io.Writer) (*apiclient.Client, error) {
	cfg, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	level := "ERROR"
	if g.Debug {
		level = "DEBUG"
	}
	log, err := newLogger(g, stderr, level)
	if err != nil {
		return nil, err
	}
	client, err := newAPIClient(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := client.LoginWith(ctx, cliLogin); err != nil {
		return nil, reachError(g, cfg.API.Server, err)
	}
	return client, nil
}

// reachError turns a failed login into one line: the server's address and
// the cause, with a hint when the server is the embedded default.
func reachError(g args.Global, server string, err error) error {
	if !apiclient.IsRetryable(err) {
		return err // refused: bad credentials and the like say so themselves
	}
	msg := fmt.Sprintf("cannot reach the server at %s: %s", server, rootCause(err))
	if plan, _ := planEmbedded(g); plan != nil {
		msg += ` (it is the embedded server: start "clearml-agent daemon" or "clearml-agent server" first)`
	}
	return errors.New(msg)
}

// rootCause is the innermost error's text: "connect: connection refused"
// rather than the layers of retries around it.
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// daemonLogin logs the daemon in. A server that does not answer is waited
// for as long as it takes, quietly: one line at once, then one every few
// minutes (a daemon started before its server, or during an outage, starts
// working when the server is back). Refusals (bad credentials) end it.
func daemonLogin(ctx context.Context, g args.Global, client *apiclient.Client, server string, log *slog.Logger) error {
	const maxWait = 30 * time.Second
	wait := time.Second
	var said time.Time
	for {
		err := client.LoginWith(ctx, cliLogin)
		if err == nil {
			if !said.IsZero() {
				log.Info("the server answers: starting", "server", server)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !apiclient.IsRetryable(err) {
			return err
		}
		if said.IsZero() || time.Since(said) >= 5*time.Minute {
			log.Warn(reachError(g, server, err).Error() + "; retrying until it answers")
			said = time.Now()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
