package hocon

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// env is a fixed environment for tests.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func parseTestFile(t *testing.T, name string, vars map[string]string) *Config {
	t.Helper()
	c, err := parseFileWithEnv(filepath.Join("testdata", name), env(vars))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return c
}

func parseFileWithEnv(path string, lookup func(string) (string, bool)) (*Config, error) {
	data, err := readTestFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWithEnv(path, data, lookup)
}

type want struct {
	path string
	val  any
}

func checkValues(t *testing.T, c *Config, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, ok := c.Get(w.path)
		if !ok {
			t.Errorf("%s: missing, want %#v", w.path, w.val)
			continue
		}
		if !reflect.DeepEqual(got, w.val) {
			t.Errorf("%s = %#v, want %#v", w.path, got, w.val)
		}
	}
}

func TestTestdataFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		env     map[string]string
		wants   []want
		missing []string
	}{
		{
			file: "default_clearml.conf",
			wants: []want{
				{"api.api_server", "https://api.clear.example.com"},
				{"api.web_server", "https://app.clear.example.com"},
				{"api.files_server", "https://files.clear.example.com"},
				{"api.credentials.access_key", "AK7Q2EXAMPLE"},
				{"api.credentials.secret_key", "sK+9/example=secret"},
				{"api.verify_certificate", true},
				{"agent.git_user", ""},
				{"agent.git_host", ""},
				{"agent.translate_ssh", true},
				{"agent.docker_pip_cache", "~/.clearml/pip-cache"},
				{"agent.default_python", 3.1}, // an unquoted 3.10 is a float, as in pyhocon
				{"agent.package_manager.type", "pip"},
				{"agent.package_manager.pip_version", []any{
					"<20.2 ; python_version < '3.10'",
					"<22.3 ; python_version >= '3.10' and python_version <= '3.11'",
					">=23,<24.3 ; python_version >= '3.12'",
				}},
				{"agent.package_manager.extra_index_url", []any{
					"https://pypi.internal.example.com/simple",
					"https://download.pytorch.org/whl/cu118",
				}},
				{"agent.package_manager.conda_channels", []any{"pytorch", "conda-forge", "nvidia", "defaults"}},
				{"agent.package_manager.post_optional_packages", []any{"pygobject"}},
				{"agent.package_manager.torch_nightly", false},
				{"agent.venvs_dir", "~/.clearml/venvs-builds"},
				{"agent.venvs_cache", map[string]any{
					"max_entries": int64(10), "free_space_threshold_gb": 2.0, "path": "~/.clearml/venvs-cache",
				}},
				{"agent.vcs_cache.enabled", true},
				{"agent.vcs_cache.path", "~/.clearml/vcs-cache"},
				{"agent.venv_update.enabled", false},
				{"agent.pip_download_cache.path", "~/.clearml/pip-download-cache"},
				{"agent.cuda_version", 11.8},
				{"agent.cudnn_version", "8.6"},
				{"agent.worker_name", ""},
				{"agent.default_docker.image", "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"},
				{"agent.default_docker.arguments", []any{"--ipc=host"}},
				{"agent.extra_docker_arguments", []any{"-e", "HTTP_PROXY=http://proxy.example.com:3128", "--shm-size=8g"}},
				{"agent.docker_internal_mounts.sdk_cache", "/clearml_agent_cache"},
				{"agent.docker_internal_mounts.venv_build", "~/.clearml/venvs-builds"},
				{"agent.hide_docker_command_env_vars.extra_keys", []any{}},
				{"agent.resource_monitoring.default_gpu_utilization", int64(100)},
				{"sdk.storage.cache.default_base_dir", "~/.clearml/cache"},
				{"sdk.storage.direct_access", []any{map[string]any{"url": "file://*"}}},
				{"sdk.aws.s3.credentials", []any{map[string]any{
					"bucket": "my-bucket-name", "key": "my-access-key", "secret": "my-secret-key",
				}}},
				{"sdk.aws.boto3.pool_connections", int64(512)},
				{"sdk.development.task_reuse_time_window_in_hours", 72.0},
				{"sdk.development.worker.ping_period_sec", int64(30)},
			},
			missing: []string{"agent.uptime", "agent.python_binary"},
		},
		{
			file: "clearml_init.conf",
			wants: []want{
				{"api.web_server", "http://localhost:8080"},
				{"api.api_server", "http://localhost:8008"},
				{"api.files_server", "http://localhost:8081"},
				{"api.credentials", map[string]any{
					"access_key": "K1X2Y3Z4EXAMPLE", "secret_key": "s3cr3t/with+symbols=and-more",
				}},
				{"sdk.development.default_output_uri", "s3://bucket/outputs"},
			},
			missing: []string{"agent"},
		},
		{
			file: "include/clearml.conf",
			env:  map[string]string{"HOME": "/home/jane", "CLEARML_API_ACCESS_KEY": "ENV-ACCESS"},
			wants: []want{
				{"api.api_server", "https://api.site.example.com"}, // ${?} unset keeps the included value
				{"api.web_server", "https://app.site.example.com"},
				{"api.credentials.access_key", "ENV-ACCESS"},
				{"api.credentials.secret_key", "SITE-SECRET"},
				{"agent.worker_name", "site-worker"},
				{"agent.docker_pip_cache", "/home/jane/.clearml/pip-cache"},
				{"agent.venvs_dir", "/data/clearml/venvs-builds"},
				{"agent.cuda_version", "12.1"},
				{"agent.package_manager.type", "pip"},
				{"agent.package_manager.extra_index_url", []any{
					"https://pypi.site.example.com/simple", "https://extra.example.com/simple",
				}},
				{"agent.default_docker.image", "nvidia/cuda:12.1.0-runtime-ubuntu22.04"},
				{"agent.default_docker.arguments", []any{"--ipc=host", "--gpus", "all", "--network=host"}},
			},
		},
		{
			file: "include/clearml.conf",
			env: map[string]string{"HOME": "/root", "CLEARML_API_HOST": "http://10.0.0.5:8008",
				"CLEARML_WORKER_NAME": "box-7"},
			wants: []want{
				{"api.api_server", "http://10.0.0.5:8008"},
				{"api.credentials.access_key", "SITE-ACCESS"},
				{"agent.worker_name", "box-7"},
				{"agent.docker_pip_cache", "/root/.clearml/pip-cache"},
			},
		},
		{
			file: "dotted_triple.conf",
			env:  map[string]string{"PATH": "/usr/bin:/bin"},
			wants: []want{
				{"agent.package_manager.type", "uv"},
				{"agent.package_manager.pip_version", "<24"},
				{"agent.package_manager.system_site_packages", "yes"},
				{"agent.package_manager.priority_packages", []any{"numpy", "torch>=2.0", "cython"}},
				{"agent.default_docker", map[string]any{"image": "python:3.11-slim", "arguments": []any{"--ipc=host"}}},
				{`sdk."google.storage".project`, "my-project"},
				{"agent.docker_internal_mounts.sdk_cache", "/clearml_agent_cache"},
				{"agent.extra_docker_shell_script", "\napt-get update\napt-get install -y \"git\" curl\n"},
				{"agent.docker_init_bash_script", `echo "start"`},
				{"environment.PYTHONUNBUFFERED", int64(1)},
				{"environment.DATA_DIR", "/mnt/data"},
				{"environment.PATH", "/usr/bin:/bin:/opt/tools/bin"},
				{"agent.default_python", 3.1},
				{"agent.vcs_cache.enabled", "off"},
				{"agent.venvs_cache.max_entries", int64(25)},
			},
			missing: []string{"sdk.google", "sdk.google.storage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			c := parseTestFile(t, tt.file, tt.env)
			checkValues(t, c, tt.wants)
			for _, m := range tt.missing {
				if c.Has(m) {
					t.Errorf("%s is set, want missing", m)
				}
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	c, err := ParseFile(filepath.Join("testdata", "clearml_init.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String("api.api_server", ""); got != "http://localhost:8008" {
		t.Errorf("api_server = %q", got)
	}
	if _, err := ParseFile(filepath.Join("testdata", "no-such.conf")); err == nil {
		t.Error("ParseFile of a missing file: want an error")
	}
}

func readTestFile(path string) ([]byte, error) { return os.ReadFile(path) }
