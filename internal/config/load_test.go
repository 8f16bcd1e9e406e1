package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// testOptions returns options that read only env and home, never the real
// environment or the real ~/clearml.conf.
func testOptions(home string, env map[string]string) LoadOptions {
	return LoadOptions{
		Home: home,
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		Environ: func() []string {
			var out []string
			for k, v := range env {
				out = append(out, k+"="+v)
			}
			sort.Strings(out)
			return out
		},
		Hostname: func() (string, error) { return "testhost", nil },
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, opts LoadOptions) *Config {
	t.Helper()
	c, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	c := mustLoad(t, testOptions(home, nil))

	if len(c.Files) != 0 || c.Location() != "None" {
		t.Errorf("Files = %v, Location = %q; want none", c.Files, c.Location())
	}
	wantAPI := API{VerifyCertificate: true, DefaultMethod: "GET", TokenExpirationThreshold: 12 * time.Hour}
	if !reflect.DeepEqual(c.API, wantAPI) {
		t.Errorf("API = %+v\nwant %+v", c.API, wantAPI)
	}
	wantAgent := Agent{
		WorkerName:             "testhost",
		TaskPingInterval:       60 * time.Second,
		PollInterval:           5 * time.Second,
		StatusReportInterval:   30 * time.Second,
		AbortGracePeriod:       10 * time.Second,
		ReattachTimeout:        10 * time.Minute,
		SuppressCarriageReturn: true,
		ApplyEnvironment:       true,
		ApplyFiles:             true,
		Environment:            map[string]string{},
		DiskUsePath:            home,
	}
	if !reflect.DeepEqual(c.Agent, wantAgent) {
		t.Errorf("Agent = %+v\nwant %+v", c.Agent, wantAgent)
	}
	for key, want := range map[string]string{
		"agent.default_docker.image":                 "nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04",
		"agent.venvs_dir":                            "~/.clearml/venvs-builds",
		"agent.package_manager.type":                 "pip",
		"api.http.max_req_size":                      "15728640",
		"api.http.retries.backoff_factor":            "1.0",
		"sdk.storage.cache.default_base_dir":         "~/.clearml/cache",
		"agent.docker_internal_mounts.ssh_ro_folder": "/.ssh",
	} {
		if got := c.Raw.String(key, "<unset>"); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if err := c.Validate(); !errors.Is(err, ErrNoServer) {
		t.Errorf("Validate() = %v, want ErrNoServer", err)
	}
}

func TestLocalFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		files      map[string]string // relative to home
		env        map[string]string // "$HOME" and "$DIR" are replaced
		configFile string
		wantWorker string
		wantExtra  string // agent.extra, to check merging
		wantFiles  []string
		wantLoc    string
	}{
		{
			name:       "no files",
			wantWorker: "",
			wantLoc:    "None",
		},
		{
			name:       "trains.conf alone",
			files:      map[string]string{"trains.conf": "agent { worker_id: t, extra: fromtrains }"},
			wantWorker: "t", wantExtra: "fromtrains",
			wantFiles: []string{"trains.conf"}, wantLoc: "trains.conf",
		},
		{
			name: "clearml.conf beats trains.conf, keys merge",
			files: map[string]string{
				"trains.conf":  "agent { worker_id: t, extra: fromtrains }",
				"clearml.conf": "agent.worker_id: c",
			},
			wantWorker: "c", wantExtra: "fromtrains",
			wantFiles: []string{"trains.conf", "clearml.conf"}, wantLoc: "clearml.conf",
		},
		{
			name: "CLEARML_CONFIG_FILE replaces the home files",
			files: map[string]string{
				"clearml.conf": "agent { worker_id: c, extra: home }",
				"other.conf":   "agent.worker_id: o",
			},
			env:        map[string]string{"CLEARML_CONFIG_FILE": "~/other.conf"},
			wantWorker: "o",
			wantFiles:  []string{"other.conf"}, wantLoc: "other.conf",
		},
		{
			name: "TRAINS_CONFIG_FILE too",
			files: map[string]string{
				"clearml.conf": "agent.worker_id: c",
				"other.conf":   "agent.worker_id: o",
			},
			env:        map[string]string{"TRAINS_CONFIG_FILE": "$HOME/other.conf"},
			wantWorker: "o",
			wantFiles:  []string{"other.conf"}, wantLoc: "other.conf",
		},
		{
			name: "CLEARML_CONFIG_FILE beats TRAINS_CONFIG_FILE",
			files: map[string]string{
				"a.conf": "agent.worker_id: a",
				"b.conf": "agent.worker_id: b",
			},
			env:        map[string]string{"CLEARML_CONFIG_FILE": "$HOME/a.conf", "TRAINS_CONFIG_FILE": "$HOME/b.conf"},
			wantWorker: "a",
			wantFiles:  []string{"a.conf"}, wantLoc: "a.conf",
		},
		{
			name:       "missing CLEARML_CONFIG_FILE is silently empty",
			files:      map[string]string{"clearml.conf": "agent.worker_id: c"},
			env:        map[string]string{"CLEARML_CONFIG_FILE": "$HOME/missing.conf"},
			wantWorker: "", wantLoc: "missing.conf",
		},
		{
			name: "--config-file beats CLEARML_CONFIG_FILE",
			files: map[string]string{
				"env.conf":  "agent.worker_id: env",
				"flag.conf": "agent.worker_id: flag",
			},
			env:        map[string]string{"CLEARML_CONFIG_FILE": "$HOME/env.conf", "CONFDIR": "$HOME"},
			configFile: "${CONFDIR}/flag.conf",
			wantWorker: "flag",
			wantFiles:  []string{"flag.conf"}, wantLoc: "flag.conf",
		},
		{
			name:       "--config-file with ~",
			files:      map[string]string{"sub/flag.conf": "agent.worker_id: flag"},
			configFile: "~/sub/flag.conf",
			wantWorker: "flag",
			wantFiles:  []string{"sub/flag.conf"}, wantLoc: "sub/flag.conf",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, home, name, content)
			}
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = strings.ReplaceAll(v, "$HOME", home)
			}
			opts := testOptions(home, env)
			opts.ConfigFile = tt.configFile
			c := mustLoad(t, opts)

			if c.Agent.WorkerID != tt.wantWorker {
				t.Errorf("WorkerID = %q, want %q", c.Agent.WorkerID, tt.wantWorker)
			}
			if got := c.Raw.String("agent.extra", ""); got != tt.wantExtra {
				t.Errorf("agent.extra = %q, want %q", got, tt.wantExtra)
			}
			var wantFiles []string
			for _, f := range tt.wantFiles {
				wantFiles = append(wantFiles, filepath.Join(home, f))
			}
			if !reflect.DeepEqual(c.Files, wantFiles) {
				t.Errorf("Files = %q, want %q", c.Files, wantFiles)
			}
			wantLoc := tt.wantLoc
			if wantLoc != "None" {
				wantLoc = filepath.Join(home, wantLoc)
			}
			if c.Location() != wantLoc {
				t.Errorf("Location() = %q, want %q", c.Location(), wantLoc)
			}
		})
	}
}

func TestConfigFileMustExist(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, tt := range []struct{ name, flag, wantPath string }{
		{"missing", "~/nope.conf", filepath.Join(home, "nope.conf")},
		{"directory", home, home},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(home, nil)
			opts.ConfigFile = tt.flag
			_, err := Load(opts)
			want := "loading configuration: could not open configuration file: " + tt.wantPath
			if err == nil || err.Error() != want {
				t.Fatalf("Load() error = %v, want %q", err, want)
			}
			if tt.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v does not wrap fs.ErrNotExist", err)
			}
		})
	}
}

func TestConfigPathDirectory(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	dir := t.TempDir()
	writeFile(t, dir, "default/agent.conf", "worker_id: dflt\nworker_name: dflt-name\nreload_config: true")
	writeFile(t, dir, "default/extra/deep.conf", "x: 1")
	writeFile(t, dir, "local/agent.conf", "worker_id: local")
	writeFile(t, dir, "default/ignored.txt", "not: read")

	t.Run("default only", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, testOptions(home, map[string]string{"CLEARML_CONFIG_PATH": dir}))
		if c.Agent.WorkerID != "dflt" || !c.Agent.ReloadConfig {
			t.Errorf("WorkerID = %q, ReloadConfig = %v; want dflt, true", c.Agent.WorkerID, c.Agent.ReloadConfig)
		}
		if got := c.Raw.String("extra.deep.x", ""); got != "1" {
			t.Errorf("extra.deep.x = %q, want 1", got)
		}
		if len(c.Files) != 2 {
			t.Errorf("Files = %q, want the two .conf files", c.Files)
		}
	})
	t.Run("TRAINS_ENV layer, then clearml.conf wins", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		writeFile(t, home, "clearml.conf", "agent.worker_name: from-home")
		c := mustLoad(t, testOptions(home, map[string]string{"TRAINS_CONFIG_PATH": dir, "TRAINS_ENV": "local"}))
		if c.Agent.WorkerID != "local" || c.Agent.WorkerName != "from-home" {
			t.Errorf("WorkerID, WorkerName = %q, %q; want local, from-home", c.Agent.WorkerID, c.Agent.WorkerName)
		}
	})
	t.Run("invalid TRAINS_ENV", func(t *testing.T) {
		t.Parallel()
		_, err := Load(testOptions(home, map[string]string{"CLEARML_CONFIG_PATH": dir, "TRAINS_ENV": "prod"}))
		if err == nil || !strings.Contains(err.Error(), `invalid environment "prod"`) {
			t.Errorf("Load() error = %v, want invalid environment", err)
		}
	})
}

func TestDynamicOverrides(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", "agent { worker_id: file, docker_force_pull: false, git_user: file-user }")
	c := mustLoad(t, testOptions(home, map[string]string{
		"CLEARML_AGENT__AGENT__WORKER_ID":                          "from-env",
		"CLEARML_AGENT__AGENT__DOCKER_FORCE_PULL":                  "true",
		"CLEARML_AGENT__AGENT__UPTIME":                             `["17-20 SUN,TUE", "9-12 MON"]`,
		"CLEARML_AGENT__AGENT__GIT_USER":                           "  ",
		"CLEARML_AGENT__SDK__AWS__S3__REGION":                      "eu-west-1",
		"CLEARML_AGENT__AGENT__RESOURCE_MONITORING__DISK_USE_PATH": "~/data",
		"CLEARML_AGENT__ENVIRONMENT":                               "{ FOO: bar, N: 3 }",
		"CLEARML_AGENTX__AGENT__WORKER_NAME":                       "not an override",
	}))
	if c.Agent.WorkerID != "from-env" {
		t.Errorf("WorkerID = %q, want from-env", c.Agent.WorkerID)
	}
	if b, err := c.Raw.Bool("agent.docker_force_pull", false); err != nil || !b {
		t.Errorf("agent.docker_force_pull = %v, %v; want a true boolean", b, err)
	}
	if want := []string{"17-20 SUN,TUE", "9-12 MON"}; !reflect.DeepEqual(c.Agent.Uptime, want) {
		t.Errorf("Uptime = %q, want %q", c.Agent.Uptime, want)
	}
	if c.Agent.GitUser != "" {
		t.Errorf("GitUser = %q; an empty override sets the empty string", c.Agent.GitUser)
	}
	if got := c.Raw.String("sdk.aws.s3.region", ""); got != "eu-west-1" {
		t.Errorf("sdk.aws.s3.region = %q", got)
	}
	if want := filepath.Join(home, "data"); c.Agent.DiskUsePath != want {
		t.Errorf("DiskUsePath = %q, want %q", c.Agent.DiskUsePath, want)
	}
	if want := map[string]string{"FOO": "bar", "N": "3"}; !reflect.DeepEqual(c.Agent.Environment, want) {
		t.Errorf("Environment = %v, want %v", c.Agent.Environment, want)
	}
	if c.Agent.WorkerName != "testhost" {
		t.Errorf("WorkerName = %q, want the host name", c.Agent.WorkerName)
	}

	// The specific variables (layer 6) beat the dynamic ones (layer 4).
	c = mustLoad(t, testOptions(home, map[string]string{
		"CLEARML_AGENT__AGENT__WORKER_ID": "dynamic",
		"CLEARML_WORKER_ID":               "specific",
	}))
	if c.Agent.WorkerID != "specific" {
		t.Errorf("WorkerID = %q, want specific", c.Agent.WorkerID)
	}

	_, err := Load(testOptions(home, map[string]string{"CLEARML_AGENT__AGENT__X": "{ unterminated"}))
	if err == nil || !strings.Contains(err.Error(), "$CLEARML_AGENT__AGENT__X:") {
		t.Errorf("Load() error = %v, want one naming the variable", err)
	}
}

func TestRealisticFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file                               string
		server, web, files, access, secret string
		check                              func(t *testing.T, c *Config)
	}{
		{
			file:   "clearml_init.conf",
			server: "http://localhost:8008", web: "http://localhost:8080", files: "http://localhost:8081",
			access: "K1X2Y3Z4EXAMPLE", secret: "s3cr3t/with+symbols=and-more",
			check: func(t *testing.T, c *Config) {
				if got := c.Raw.String("sdk.development.default_output_uri", ""); got != "s3://bucket/outputs" {
					t.Errorf("default_output_uri = %q", got)
				}
			},
		},
		{
			file:   "default_clearml.conf",
			server: "https://api.clear.example.com", web: "https://app.clear.example.com", files: "https://files.clear.example.com",
			access: "AK7Q2EXAMPLE", secret: "sK+9/example=secret",
			check: func(t *testing.T, c *Config) {
				if c.Agent.CUDAVersion != "11.8" || c.Agent.CUDNNVersion != "8.6" || c.Agent.DefaultPython != "3.1" {
					t.Errorf("CUDA, cuDNN, python = %q, %q, %q", c.Agent.CUDAVersion, c.Agent.CUDNNVersion, c.Agent.DefaultPython)
				}
				if got := c.Raw.String("agent.default_docker.image", ""); got != "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" {
					t.Errorf("default_docker.image = %q", got)
				}
				// Keys of the defaults the file does not mention survive.
				if got := c.Raw.String("agent.docker_internal_mounts.venvs_cache", ""); got != "/root/.clearml/venvs-cache" {
					t.Errorf("docker_internal_mounts.venvs_cache = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			writeFile(t, home, "clearml.conf", string(data))
			c := mustLoad(t, testOptions(home, nil))
			a := c.API
			if a.Server != tt.server || a.WebServer != tt.web || a.FilesServer != tt.files {
				t.Errorf("servers = %q, %q, %q", a.Server, a.WebServer, a.FilesServer)
			}
			if a.AccessKey != tt.access || a.SecretKey != tt.secret {
				t.Errorf("credentials = %q, %q", a.AccessKey, a.SecretKey)
			}
			if got := c.Raw.String("api.host", ""); got != tt.server {
				t.Errorf("api.host = %q, want it copied from api.api_server", got)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
			tt.check(t, c)
		})
	}
}
