package cli

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/goclearml/agent/internal/server"
)

func runServer(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8008", "address to listen on")
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "folder for the SQLite database and the client configuration")
	db := fs.String("db", "", "PostgreSQL URL (postgres://user:pass@host/db); empty: SQLite in --data-dir")
	logLevel := fs.String("log-level", "INFO", "operator log level: DEBUG, INFO, WARNING, ERROR")
	watchdog := fs.Duration("watchdog-threshold", 2*time.Hour, "stop in-progress tasks not updated for this long")
	watchdogEvery := fs.Duration("watchdog-interval", 15*time.Minute, "how often the watchdog looks")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: clearml-agent server [flags]\n\nRuns the embedded ClearML-compatible server.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return errHelp
		}
		return &UsageError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &UsageError{Msg: fmt.Sprintf("server: unexpected argument %q", fs.Arg(0))}
	}
	if *watchdog <= 0 || *watchdogEvery <= 0 {
		return &UsageError{Msg: "server: watchdog durations must be positive"}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	cfg := server.RunConfig{Listen: *listen, DataDir: *dataDir, DB: *db,
		Watchdog: server.WatchdogOptions{Threshold: *watchdog, Interval: *watchdogEvery}}
	return server.Run(ctx, cfg, log, func(s server.Started) {
		fmt.Fprintf(stdout, "ClearML-compatible server listening on %s\n", s.URL)
		if s.CreatedConfig {
			fmt.Fprintf(stdout, "Wrote client configuration with new credentials to %s\n", s.ClientConfig)
		} else {
			fmt.Fprintf(stdout, "Client configuration: %s\n", s.ClientConfig)
		}
		fmt.Fprintf(stdout, "Use it with: export CLEARML_CONFIG_FILE=%s\n", s.ClientConfig)
	})
}
