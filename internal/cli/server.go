package cli

import (
	"flag"
	"fmt"
	cliargs "github.com/goclearml/agent/internal/args"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/fileserver"
	"github.com/goclearml/agent/internal/server"
)

func runServer(g cliargs.Global, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8008", "address to listen on")
	publicURL := fs.String("public-url", "", "the API address written into clearml.conf for clients (default: the --listen address; "+
		"with 0.0.0.0, this host's first non-loopback address)")
	dataDir := fs.String("data-dir", server.DefaultDataDir(), "folder for the SQLite database and the client configuration")
	db := fs.String("db", "", "PostgreSQL URL (postgres://user:pass@host/db); empty: SQLite in --data-dir")
	sqliteSync := fs.String("sqlite-sync", "normal", "SQLite durability: normal (keeps every acknowledged write when the server process dies) "+
		"or full (also on a power loss, for about a third of the write throughput)")
	logLevel := fs.String("log-level", "INFO", "operator log level: DEBUG, INFO, WARNING, ERROR")
	watchdog := fs.Duration("watchdog-threshold", 2*time.Hour, "stop in-progress tasks not updated for this long")
	leaseTimeout := fs.Duration("lease-timeout", 30*time.Second, "a task handed out by queues.get_next_task goes back to its queue "+
		"unless the worker starts it within this time")
	workerTimeout := fs.Duration("worker-timeout", 600*time.Second, "a worker that registered without a timeout is dropped from "+
		"the workers list this long after its last status report")
	watchdogEvery := fs.Duration("watchdog-interval", 15*time.Minute, "how often the watchdog looks")
	noFiles := fs.Bool("no-files", false, "run no file server (files_server then points at the API address)")
	filesDir := fs.String("files-dir", "", "folder for uploaded files (default: files/ in --data-dir)")
	filesS3 := fs.String("files-s3", "", "keep uploaded files in an S3-compatible bucket: http(s)://endpoint/bucket[/prefix]; "+
		"credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (share one bucket between replicas)")
	filesS3Region := fs.String("files-s3-region", "", "the bucket's region (default: AWS_REGION, else us-east-1)")
	filesListen := fs.String("files-listen", "", "serve files on their own address instead of under /files on --listen")
	filesMax := fs.String("files-max-upload", "5GiB", "largest upload request (bytes, or with KiB, MiB, GiB)")
	filesNoAuth := fs.Bool("files-no-auth", false, "serve files without checking credentials (the reference file server's default)")
	maxBody := fs.String("max-body", "32MiB", "largest API request body (bytes, or with KiB, MiB, GiB)")
	bodyBudget := fs.String("body-budget", "64MiB", "API request bodies of 1 MiB and more served at once, in bytes; the others wait")
	uiPrefix := fs.String("ui-prefix", "", "serve the web UI under this path (e.g. /clearml, for a reverse proxy) instead of at /")
	noUI := fs.Bool("no-ui", false, "serve no web UI")
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
	if *sqliteSync != "normal" && *sqliteSync != "full" {
		return &UsageError{Msg: "server: --sqlite-sync must be normal or full"}
	}
	if *watchdog <= 0 || *watchdogEvery <= 0 {
		return &UsageError{Msg: "server: watchdog durations must be positive"}
	}
	maxUpload, err := parseSize(*filesMax)
	if err != nil {
		return &UsageError{Msg: "server: --files-max-upload: " + err.Error()}
	}
	maxBodyBytes, err := parseSize(*maxBody)
	if err != nil {
		return &UsageError{Msg: "server: --max-body: " + err.Error()}
	}
	budget, err := parseSize(*bodyBudget)
	if err != nil {
		return &UsageError{Msg: "server: --body-budget: " + err.Error()}
	}
	if *uiPrefix != "" && (!strings.HasPrefix(*uiPrefix, "/") || strings.ContainsAny(*uiPrefix, "?#\\ ") || strings.Contains(*uiPrefix, "..")) {
		return &UsageError{Msg: "server: --ui-prefix must be a path such as /clearml"}
	}
	files := server.FilesConfig{Disabled: *noFiles, Dir: *filesDir, MaxUploadBytes: maxUpload, NoAuth: *filesNoAuth, Listen: *filesListen}
	if *filesS3 != "" {
		s3, err := parseS3URL(*filesS3, *filesS3Region)
		if err != nil {
			return &UsageError{Msg: "server: --files-s3: " + err.Error()}
		}
		files.S3 = s3
	}
	log, err := newLogger(g, stderr, *logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if *leaseTimeout < time.Second {
		return &UsageError{Msg: fmt.Sprintf("server: --lease-timeout %s is too short (at least 1s)", *leaseTimeout)}
	}
	if *workerTimeout < time.Second {
		return &UsageError{Msg: fmt.Sprintf("server: --worker-timeout %s is too short (at least 1s)", *workerTimeout)}
	}
	if *publicURL != "" {
		if u, err := url.Parse(*publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &UsageError{Msg: fmt.Sprintf("server: --public-url %q is not an http(s) URL", *publicURL)}
		}
	}
	cfg := server.RunConfig{Listen: *listen, PublicURL: *publicURL, DataDir: *dataDir, DB: *db, SQLiteSync: *sqliteSync,
		Watchdog: server.WatchdogOptions{Threshold: *watchdog, Interval: *watchdogEvery}, Files: files,
		UI: server.UIConfig{Disabled: *noUI, Prefix: *uiPrefix},
		Options: server.Options{MaxBodyBytes: maxBodyBytes, BodyBudget: budget, LeaseTimeout: *leaseTimeout,
			WorkerTimeout: *workerTimeout}}
	return server.Run(ctx, cfg, log, func(s server.Started) {
		fmt.Fprintf(stdout, "ClearML-compatible server listening on %s\n", s.URL)
		if s.FilesURL != s.URL {
			fmt.Fprintf(stdout, "File server: %s\n", s.FilesURL)
		}
		if !*noUI {
			fmt.Fprintf(stdout, "Web UI: %s/ (sign in with the access key and secret of the client configuration)\n", s.WebURL)
		}
		if s.CreatedConfig {
			fmt.Fprintf(stdout, "Wrote client configuration with new credentials to %s\n", s.ClientConfig)
		} else {
			fmt.Fprintf(stdout, "Client configuration: %s\n", s.ClientConfig)
		}
		fmt.Fprintf(stdout, "Use it with: export CLEARML_CONFIG_FILE=%s\n", s.ClientConfig)
	})
}

// parseSize reads a byte count with an optional KiB/MiB/GiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a positive size", v)
	}
	return n * mult, nil
}

// parseS3URL reads http(s)://endpoint/bucket[/prefix] and the credentials
// from the environment (never from flags, which other users can see).
func parseS3URL(raw, region string) (*fileserver.S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not http(s)://endpoint/bucket[/prefix]", raw)
	}
	bucket, prefix, _ := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if bucket == "" {
		return nil, fmt.Errorf("%q names no bucket", raw)
	}
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	return &fileserver.S3Config{Endpoint: u.Scheme + "://" + u.Host, Bucket: bucket, Prefix: prefix, Region: region,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY")}, nil
}
