package config

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/hocon"
)

//go:embed defaults.conf
var defaultsText []byte

// defaultsName is the file name errors in the built-in defaults report.
const defaultsName = "<built-in defaults>"

// LoadOptions says where Load looks. The zero value reads the real
// environment and home directory.
type LoadOptions struct {
	// ConfigFile is the --config-file flag. $VAR and ${VAR} are expanded
	// (unknown variables are kept verbatim, as Python's expandvars does),
	// then ~, and the result is made absolute. The file must exist.
	ConfigFile string
	// BaseFile, when set, is read before the local files, so that they
	// override it: the embedded default's own client configuration fills
	// in what ~/clearml.conf leaves out (its server, its credentials). A
	// missing file is empty.
	BaseFile string
	// LookupEnv reads one environment variable; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ lists the environment as KEY=value strings, for the
	// CLEARML_AGENT__ overrides; nil means os.Environ.
	Environ func() []string
	// Home is the home directory; "" means os.UserHomeDir().
	Home string
	// Hostname names this machine, for the default worker name; nil means
	// os.Hostname.
	Hostname func() (string, error)
}

// Config is the loaded configuration: the merged tree and the typed values
// the daemon uses. Load returns it fully populated; it is not safe for
// concurrent modification.
type Config struct {
	// Raw is the merged tree (defaults, files, environment overrides), for
	// keys without a typed field.
	Raw *hocon.Config
	// Files lists the files actually read, in order.
	Files []string
	API   API
	Agent Agent

	location string    // the file named in the printed header
	mask     maskRules // compiled agent.sanitize_config_printout and docker rules
}

// API is how to reach and authenticate with the server.
type API struct {
	// Server, WebServer and FilesServer have no trailing "/".
	Server, WebServer, FilesServer string
	AccessKey, SecretKey           string
	// AuthToken is a ready-made token (CLEARML_AUTH_TOKEN); when set,
	// upstream ignores the key and secret.
	AuthToken string
	// VerifyCertificate turns TLS verification on; CABundle, when not
	// empty, is the CA file to verify against.
	VerifyCertificate bool
	CABundle          string
	// DefaultMethod is the HTTP verb, upper case: GET, POST or PUT once
	// Validate has passed.
	DefaultMethod string
	// TokenExpirationThreshold: log in again when the token has less left.
	TokenExpirationThreshold time.Duration
	// RequestTokenExpirationSec is sent as expiration_sec on login; 0 means
	// not sent.
	RequestTokenExpirationSec int64
}

// Agent holds the agent.* values the daemon uses.
type Agent struct {
	WorkerID, WorkerName      string
	GitUser, GitPass, GitHost string
	CPUOnly                   bool
	// CUDAVersion and CUDNNVersion are as configured ("11.8", "110"...);
	// empty means detect. DefaultPython empty means the caller picks.
	// Numbers print as Python does: an unquoted 3.10 is the number 3.1,
	// for us as for pyhocon, so versions should be quoted.
	CUDAVersion, CUDNNVersion string
	DefaultPython             string
	// TaskPingInterval is the tasks.ping period; 0 disables pinging.
	TaskPingInterval     time.Duration
	PollInterval         time.Duration
	StatusReportInterval time.Duration
	// AbortGracePeriod is how long an aborted task may take to exit before
	// it is killed.
	AbortGracePeriod time.Duration
	// ReattachTimeout is how long a task runs on when its daemon died
	// before the task's supervisor stops it (agent.reattach_timeout_sec,
	// ours; 0: it runs on until a daemon takes it back).
	ReattachTimeout        time.Duration
	SuppressCarriageReturn bool
	ReloadConfig           bool
	// Uptime and Downtime are schedule entries such as "17-20 SUN,TUE".
	Uptime, Downtime []string
	// ApplyEnvironment says whether Environment is exported to the
	// process environment; ApplyFiles the same for the files section.
	ApplyEnvironment bool
	ApplyFiles       bool
	// Environment is the top-level environment section, values converted
	// to text as Python's str() does (true is "True"; false, 0 and null
	// are ""). Empty keys are dropped.
	Environment map[string]string
	// DiskUsePath is the path whose disk usage is reported; ~ is expanded.
	DiskUsePath string
	// MetricsAddress is where to serve metrics; "" turns them off.
	MetricsAddress   string
	CrashOnException bool
}

// Load reads the configuration layers described in the package comment
// and returns the merged, typed configuration. It does not call Validate.
func Load(opts LoadOptions) (*Config, error) {
	c, err := load(opts.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("loading configuration: %w", err)
	}
	return c, nil
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Environ == nil {
		o.Environ = os.Environ
	}
	if o.Home == "" {
		o.Home, _ = os.UserHomeDir()
	}
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	return o
}

// load is Load's pipeline, one step per layer; opts has its defaults.
func load(opts LoadOptions) (*Config, error) {
	env := envReader{lookup: opts.LookupEnv}
	raw, err := hocon.ParseWithEnv(defaultsName, defaultsText, nil)
	if err != nil {
		return nil, err
	}
	c := &Config{Raw: raw}

	if err := c.readConfigPath(env, opts.LookupEnv, opts.Home); err != nil {
		return nil, err
	}
	if err := c.readLocalFiles(opts, env); err != nil {
		return nil, err
	}
	if err := c.applyDynamicOverrides(opts); err != nil {
		return nil, err
	}
	if c.Raw.String("api.host", "") == "" && c.Raw.String("api.api_server", "") != "" {
		c.Raw.Set("api.host", c.Raw.String("api.api_server", ""))
	}
	if err := c.applyEnvTable(env); err != nil {
		return nil, err
	}
	if c.Raw.String("agent.worker_name", "") == "" {
		if host, err := opts.Hostname(); err == nil {
			c.Raw.Set("agent.worker_name", host)
		}
	}

	if err := c.readAPI(env); err != nil {
		return nil, err
	}
	if err := c.readAgent(env, opts.Home); err != nil {
		return nil, err
	}
	if c.mask, err = compileMaskRules(c.Raw, env); err != nil {
		return nil, err
	}
	return c, nil
}

// Location is the configuration file upstream names in the header of the
// printed configuration: the --config-file or CLEARML_CONFIG_FILE file,
// else ~/clearml.conf or ~/trains.conf when one exists, else "None".
func (c *Config) Location() string {
	if c.location == "" {
		return "None"
	}
	return c.location
}

// Printout is the configuration as the daemon prints it on start-up:
// upstream's header with version, then Masked.
func (c *Config) Printout(version string) string {
	return fmt.Sprintf("Current configuration (clearml_agent v%s, location: %s):\n----------------------\n%s\n",
		version, c.Location(), c.Masked())
}

// maskRules are the compiled printing rules (see mask.go).
type maskRules struct {
	hide, hideSection, dontHide, urls, dockerCmd []*regexp.Regexp
	dockerHide                                   bool            // hide_docker_command_env_vars.enabled
	dockerKeys                                   map[string]bool // env names whose -e values are hidden
	dockerURLs                                   bool            // parse_embedded_urls
}

// ExpandHome makes a path the configuration gives as ~/... absolute, in
// this user's home folder; other paths are returned as they are.
func ExpandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}
