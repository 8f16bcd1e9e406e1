package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// envReader reads environment variables the way upstream's EnvEntry does:
// a variable that is unset, empty or only spaces counts as unset, and the
// first set name of a list wins.
type envReader struct {
	lookup func(string) (string, bool)
}

// first returns the first set variable among names and its trimmed value.
func (e envReader) first(names ...string) (name, value string, ok bool) {
	for _, n := range names {
		if v, found := e.lookup(n); found {
			if v = strings.TrimSpace(v); v != "" {
				return n, v, true
			}
		}
	}
	return "", "", false
}

// boolean reads a boolean variable; set is false when none of names is set.
func (e envReader) boolean(names ...string) (value, set bool, err error) {
	n, v, ok := e.first(names...)
	if !ok {
		return false, false, nil
	}
	b, err := parseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("environment variable %s: %w", n, err)
	}
	return b, true, nil
}

// seconds reads a variable holding a number of seconds (fractions allowed).
func (e envReader) seconds(names ...string) (d time.Duration, set bool, err error) {
	n, v, ok := e.first(names...)
	if !ok {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, fmt.Errorf("environment variable %s: invalid number of seconds %q", n, v)
	}
	return secondsToDuration(f), true, nil
}

// errBool is the cause of an invalid boolean value.
var errBool = errors.New("invalid truth value (want one of y, yes, t, true, on, 1, n, no, f, false, off, 0)")

// parseBool is Python's strtobool, which upstream applies to boolean
// environment variables.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes", "t", "true", "on", "1":
		return true, nil
	case "n", "no", "f", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q: %w", s, errBool)
}

func secondsToDuration(f float64) time.Duration {
	d := f * float64(time.Second)
	switch {
	case d >= math.MaxInt64:
		return math.MaxInt64
	case d <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(d)
}

// envRow is one line of upstream's ENVIRONMENT_CONFIG table (layer 6).
type envRow struct {
	key    string
	names  []string
	isBool bool
}

var envTable = []envRow{
	{key: "api.api_server", names: []string{"CLEARML_API_HOST", "TRAINS_API_HOST"}},
	{key: "api.files_server", names: []string{"CLEARML_FILES_HOST", "TRAINS_FILES_HOST"}},
	{key: "api.web_server", names: []string{"CLEARML_WEB_HOST", "TRAINS_WEB_HOST"}},
	{key: "api.credentials.access_key", names: []string{"CLEARML_API_ACCESS_KEY", "TRAINS_API_ACCESS_KEY"}},
	{key: "api.credentials.secret_key", names: []string{"CLEARML_API_SECRET_KEY", "TRAINS_API_SECRET_KEY"}},
	{key: "agent.worker_name", names: []string{"CLEARML_WORKER_NAME", "TRAINS_WORKER_NAME"}},
	{key: "agent.worker_id", names: []string{"CLEARML_WORKER_ID", "TRAINS_WORKER_ID"}},
	{key: "agent.cuda_version", names: []string{"CLEARML_CUDA_VERSION", "TRAINS_CUDA_VERSION", "CUDA_VERSION"}},
	{key: "agent.cudnn_version", names: []string{"CLEARML_CUDNN_VERSION", "TRAINS_CUDNN_VERSION", "CUDNN_VERSION"}},
	{key: "agent.cpu_only", names: []string{"CLEARML_CPU_ONLY", "TRAINS_CPU_ONLY", "CPU_ONLY"}, isBool: true},
	// Upstream reads only the misspelled name; the right spelling is ours.
	{key: "agent.crash_on_exception", names: []string{"CLEAMRL_AGENT_CRASH_ON_EXCEPTION", "CLEARML_AGENT_CRASH_ON_EXCEPTION"}, isBool: true},
	{key: "sdk.aws.s3.key", names: []string{"AWS_ACCESS_KEY_ID"}},
	{key: "sdk.aws.s3.secret", names: []string{"AWS_SECRET_ACCESS_KEY"}},
	{key: "sdk.aws.s3.region", names: []string{"AWS_DEFAULT_REGION"}},
	{key: "sdk.google.storage.credentials_json", names: []string{"GOOGLE_APPLICATION_CREDENTIALS"}},
	// Upstream's Session.update_default_api_method writes it back too.
	{key: "api.http.default_method", names: []string{"CLEARML_API_DEFAULT_REQ_METHOD"}},
}

// applyEnvTable applies the specific variables (layer 6) to c.Raw.
func (c *Config) applyEnvTable(env envReader) error {
	for _, row := range envTable {
		if row.isBool {
			b, set, err := env.boolean(row.names...)
			if err != nil {
				return err
			}
			if set {
				c.Raw.Set(row.key, b)
			}
			continue
		}
		if _, v, ok := env.first(row.names...); ok {
			c.Raw.Set(row.key, v)
		}
	}

	// Azure credentials are appended to the container list, as upstream's
	// "sdk.azure.storage.containers.0" entry does.
	_, account, hasAccount := env.first("AZURE_STORAGE_ACCOUNT")
	_, key, hasKey := env.first("AZURE_STORAGE_KEY")
	if hasAccount || hasKey {
		entry := map[string]any{"account_name": nil, "account_key": nil}
		if hasAccount {
			entry["account_name"] = account
		}
		if hasKey {
			entry["account_key"] = key
		}
		list, _ := c.Raw.Get("sdk.azure.storage.containers")
		items, _ := list.([]any)
		c.Raw.Set("sdk.azure.storage.containers", append(items, entry))
	}
	return nil
}
