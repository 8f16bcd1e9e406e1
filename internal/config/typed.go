package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/hocon"
)

// Upstream's demo server, used only when CLEARML_NO_DEFAULT_SERVER is false.
const (
	demoAPIServer   = "https://demoapi.demo.clear.ml"
	demoWebServer   = "https://demoapp.demo.clear.ml"
	demoFilesServer = "https://demofiles.demo.clear.ml"
)

// reader converts values of the merged tree, keeping the first error. Its
// errors are *hocon.ParseError values naming the key and where the value
// was defined.
type reader struct {
	raw *hocon.Config
	err error
}

func (r *reader) keep(err error) {
	if r.err == nil && err != nil {
		r.err = err
	}
}

// typeError is a located error saying the value at path is not of the
// wanted type. The hocon package only builds located errors from its typed
// getters, so one is borrowed from Bool (which rejects objects and arrays)
// and given our message.
func (r *reader) typeError(path string, v any, want string) error {
	what := "an object"
	if _, ok := v.([]any); ok {
		what = "an array"
	}
	msg := fmt.Sprintf("cannot use %s as %s", what, want)
	_, err := r.raw.Bool(path, false)
	var pe *hocon.ParseError
	if errors.As(err, &pe) {
		located := *pe
		located.Msg = msg
		return &located
	}
	return &hocon.ParseError{Key: path, Msg: msg}
}

// str reads a scalar as text (numbers as Python prints them).
func (r *reader) str(path, def string) string {
	v, ok := r.raw.Get(path)
	switch v.(type) {
	case map[string]any, []any:
		r.keep(r.typeError(path, v, "a string"))
		return def
	}
	if !ok || v == nil {
		return def
	}
	return r.raw.String(path, def)
}

func (r *reader) boolean(path string, def bool) bool {
	b, err := r.raw.Bool(path, def)
	r.keep(err)
	return b
}

func (r *reader) int(path string, def int64) int64 {
	i, err := r.raw.Int(path, def)
	r.keep(err)
	return i
}

// seconds reads a number of seconds as a duration.
func (r *reader) seconds(path string, def float64) time.Duration {
	f, err := r.raw.Float(path, def)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = &hocon.ParseError{Key: path, Msg: "not a finite number of seconds"}
	}
	r.keep(err)
	return secondsToDuration(f)
}

func (r *reader) list(path string) []string {
	l, err := r.raw.StringList(path)
	r.keep(err)
	return l
}

// readAPI fills c.API from the tree (layer 6 already applied) and env.
func (c *Config) readAPI(env envReader) error {
	r := &reader{raw: c.Raw}
	a := &c.API
	server := r.str("api.api_server", "")
	if server == "" {
		server = r.str("api.host", "")
	}
	if server == "" {
		noDefault, set, err := env.boolean("CLEARML_NO_DEFAULT_SERVER", "TRAINS_NO_DEFAULT_SERVER")
		if err != nil {
			return err
		}
		if set && !noDefault {
			server = demoAPIServer
		}
	}
	a.Server = strings.Trim(server, "/")
	a.WebServer = strings.TrimRight(r.str("api.web_server", ""), "/")
	if a.WebServer == "" {
		a.WebServer = deriveWebServer(a.Server)
	}
	a.FilesServer = strings.TrimRight(r.str("api.files_server", ""), "/")
	if a.FilesServer == "" {
		a.FilesServer = deriveFilesServer(a.Server, a.WebServer)
	}
	a.AccessKey = r.str("api.credentials.access_key", "")
	a.SecretKey = r.str("api.credentials.secret_key", "")
	_, a.AuthToken, _ = env.first("CLEARML_AUTH_TOKEN")

	verify, set, err := env.boolean("CLEARML_API_HOST_VERIFY_CERT", "TRAINS_API_HOST_VERIFY_CERT")
	if err != nil {
		return err
	}
	a.VerifyCertificate = verify
	if !set {
		a.VerifyCertificate, a.CABundle = r.verify()
	}

	a.DefaultMethod = strings.ToUpper(strings.TrimSpace(r.str("api.http.default_method", "")))
	if a.DefaultMethod == "" {
		a.DefaultMethod = "GET"
	}
	a.TokenExpirationThreshold = r.seconds("api.auth.token_expiration_threshold_sec", 43200)
	a.RequestTokenExpirationSec = r.int("api.auth.request_token_expiration_sec", 0)
	return r.err
}

// verify reads api.verify_certificate: a boolean, or the path of a CA
// bundle (which means verification is on).
func (r *reader) verify() (bool, string) {
	const key = "api.verify_certificate"
	b, err := r.raw.Bool(key, true)
	if err == nil {
		return b, ""
	}
	if v, _ := r.raw.Get(key); v != nil {
		if s, ok := v.(string); ok {
			return true, s
		}
	}
	r.keep(err)
	return true, ""
}

// deriveWebServer is upstream's get_app_server_host fallback.
func deriveWebServer(api string) string {
	switch {
	case api == "":
		return ""
	case api == demoAPIServer:
		return demoWebServer
	case strings.Contains(api, "://demoapi."):
		return strings.Replace(api, "://demoapi.", "://demoapp.", 1)
	case strings.Contains(api, "://api."):
		return strings.Replace(api, "://api.", "://app.", 1)
	}
	if u, err := url.Parse(api); err == nil && u.Port() == "8008" {
		return strings.Replace(api, ":8008", ":8080", 1)
	}
	return ""
}

// deriveFilesServer is upstream's get_files_server_host fallback.
func deriveFilesServer(api, web string) string {
	if api == demoAPIServer {
		return demoFilesServer
	}
	u, err := url.Parse(web)
	if web == "" || err != nil {
		return ""
	}
	switch {
	case u.Port() != "":
		u.Host = strings.Replace(u.Host, ":"+u.Port(), ":8081", 1)
	case strings.HasPrefix(u.Host, "demoapp."):
		u.Host = strings.Replace(u.Host, "demoapp.", "demofiles.", 1)
	case strings.HasPrefix(u.Host, "app."):
		u.Host = strings.Replace(u.Host, "app.", "files.", 1)
	default:
		u.Host += ":8081"
	}
	return u.String()
}

// readAgent fills c.Agent from the tree and env.
func (c *Config) readAgent(env envReader, home string) error {
	r := &reader{raw: c.Raw}
	a := &c.Agent
	a.WorkerID = r.str("agent.worker_id", "")
	a.WorkerName = r.str("agent.worker_name", "")
	a.GitUser = envOr(env, r.str("agent.git_user", ""), "CLEARML_AGENT_GIT_USER", "TRAINS_AGENT_GIT_USER")
	a.GitPass = envOr(env, r.str("agent.git_pass", ""), "CLEARML_AGENT_GIT_PASS", "TRAINS_AGENT_GIT_PASS")
	a.GitHost = envOr(env, r.str("agent.git_host", ""), "CLEARML_AGENT_GIT_HOST", "TRAINS_AGENT_GIT_HOST")
	a.CPUOnly = r.boolean("agent.cpu_only", false)
	a.CUDAVersion = r.str("agent.cuda_version", "")
	a.CUDNNVersion = r.str("agent.cudnn_version", "")
	a.DefaultPython = r.str("agent.default_python", "")
	a.CrashOnException = r.boolean("agent.crash_on_exception", false)
	a.ReloadConfig = r.boolean("agent.reload_config", false)
	a.SuppressCarriageReturn = r.boolean("agent.suppress_carriage_return", true)
	a.TaskPingInterval = r.seconds("agent.task_ping_interval_sec", 60)
	a.PollInterval = r.seconds("agent.polling_interval_sec", 5)
	a.StatusReportInterval = r.seconds("agent.status_report_interval_sec", 30)
	a.AbortGracePeriod = r.seconds("agent.abort_grace_period_sec", 10)
	a.ReattachTimeout = r.seconds("agent.reattach_timeout_sec", 600)
	a.Uptime = r.list("agent.uptime")
	a.Downtime = r.list("agent.downtime")
	a.ApplyEnvironment = r.boolean("agent.apply_environment", false)
	a.ApplyFiles = r.boolean("agent.apply_files", false)
	a.Environment = r.environment()
	a.DiskUsePath = expandUser(r.str("agent.resource_monitoring.disk_use_path", ""), home)
	if a.DiskUsePath == "" {
		a.DiskUsePath = home
	}
	a.MetricsAddress = r.str("agent.metrics_address", "")
	if r.err != nil {
		return r.err
	}

	for _, o := range []struct {
		dst   *time.Duration
		names []string
	}{
		{&a.PollInterval, []string{"CLEARML_AGENT_QUEUE_POLL_FREQ_SEC"}},
		{&a.StatusReportInterval, []string{"CLEARML_AGENT_STATUS_REPORT_FREQ_SEC"}},
	} {
		d, set, err := env.seconds(o.names...)
		if err != nil {
			return err
		}
		if set {
			*o.dst = d
		}
	}
	for _, o := range []struct {
		dst   *bool
		names []string
	}{
		{&a.ApplyEnvironment, []string{"CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION"}},
		{&a.ApplyFiles, []string{"CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION"}},
	} {
		b, set, err := env.boolean(o.names...)
		if err != nil {
			return err
		}
		if set {
			*o.dst = b
		}
	}
	return nil
}

// envOr returns the first set variable among names, else def.
func envOr(env envReader, def string, names ...string) string {
	if _, v, ok := env.first(names...); ok {
		return v
	}
	return def
}

// environment reads the top-level environment section: an object, or (as
// upstream also accepts) a list of [key, value] pairs.
func (r *reader) environment() map[string]string {
	out := map[string]string{}
	v, _ := r.raw.Get("environment")
	switch x := v.(type) {
	case nil:
	case map[string]any:
		for k, val := range x {
			if k != "" {
				out[k] = pyStr(val)
			}
		}
	case []any:
		for _, item := range x {
			pair, ok := item.([]any)
			if !ok || len(pair) != 2 {
				r.keep(r.typeError("environment", x, "an object"))
				return out
			}
			if k := pyStr(pair[0]); k != "" {
				out[k] = pyStr(pair[1])
			}
		}
	default:
		r.keep(&hocon.ParseError{Key: "environment", Msg: "cannot use a scalar as an object"})
	}
	return out
}

// pyStr is Python's str(v or ""), as upstream exports the environment
// section: false, 0, null and empty containers become "", true "True".
// Containers are written as JSON, where Python would print its repr.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return ""
	case int64:
		if x == 0 {
			return ""
		}
		return strconv.FormatInt(x, 10)
	case float64:
		if x == 0 {
			return ""
		}
		return hocon.FormatFloat(x)
	case map[string]any:
		if len(x) == 0 {
			return ""
		}
	case []any:
		if len(x) == 0 {
			return ""
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
