package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// fileForEnvTests sets every key of the variable table, so each test shows
// the variable beating the file.
const fileForEnvTests = `
api {
    api_server: "https://file-api.example.com"
    web_server: "https://file-web.example.com"
    files_server: "https://file-files.example.com"
    credentials { access_key: file-access, secret_key: file-secret }
    verify_certificate: true
    http.default_method: post
}
agent {
    worker_id: file-id
    worker_name: file-name
    cuda_version: "10.1"
    cudnn_version: "7.6"
    cpu_only: false
    crash_on_exception: false
    git_user: file-git-user
    git_pass: file-git-pass
    git_host: file-git-host
    polling_interval_sec: 7
    status_report_interval_sec: 40
    apply_environment: true
    apply_files: true
}
sdk {
    aws.s3 { key: file-aws-key, secret: file-aws-secret, region: file-region }
    google.storage.credentials_json: /file/creds.json
    azure.storage.containers: [{ account_name: file-acct, account_key: file-acct-key }]
}
`

func TestEnvVarPrecedence(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", fileForEnvTests)

	type check struct {
		key  string // Raw key, "" for none
		want string // Raw value, and typed value when field is set
		// field reads the typed value; nil when the variable has none.
		field func(c *Config) any
		typed any
	}
	tests := []struct {
		name string
		env  map[string]string
		want check
	}{
		{"CLEARML_API_HOST", map[string]string{"CLEARML_API_HOST": "https://env-api.example.com/"},
			check{"api.api_server", "https://env-api.example.com/", func(c *Config) any { return c.API.Server }, "https://env-api.example.com"}},
		{"TRAINS_API_HOST", map[string]string{"TRAINS_API_HOST": "https://trains-api.example.com"},
			check{"api.api_server", "https://trains-api.example.com", func(c *Config) any { return c.API.Server }, "https://trains-api.example.com"}},
		{"CLEARML_API_HOST beats TRAINS_API_HOST", map[string]string{"CLEARML_API_HOST": "https://a.example.com", "TRAINS_API_HOST": "https://b.example.com"},
			check{"api.api_server", "https://a.example.com", func(c *Config) any { return c.API.Server }, "https://a.example.com"}},
		{"empty CLEARML_API_HOST falls through", map[string]string{"CLEARML_API_HOST": " ", "TRAINS_API_HOST": "https://b.example.com"},
			check{"api.api_server", "https://b.example.com", func(c *Config) any { return c.API.Server }, "https://b.example.com"}},
		{"CLEARML_WEB_HOST", map[string]string{"CLEARML_WEB_HOST": "https://env-web.example.com"},
			check{"api.web_server", "https://env-web.example.com", func(c *Config) any { return c.API.WebServer }, "https://env-web.example.com"}},
		{"TRAINS_WEB_HOST", map[string]string{"TRAINS_WEB_HOST": "https://tw.example.com"},
			check{"api.web_server", "https://tw.example.com", func(c *Config) any { return c.API.WebServer }, "https://tw.example.com"}},
		{"CLEARML_FILES_HOST", map[string]string{"CLEARML_FILES_HOST": "https://env-files.example.com/"},
			check{"api.files_server", "https://env-files.example.com/", func(c *Config) any { return c.API.FilesServer }, "https://env-files.example.com"}},
		{"TRAINS_FILES_HOST", map[string]string{"TRAINS_FILES_HOST": "s3://bucket"},
			check{"api.files_server", "s3://bucket", func(c *Config) any { return c.API.FilesServer }, "s3://bucket"}},
		{"CLEARML_API_ACCESS_KEY", map[string]string{"CLEARML_API_ACCESS_KEY": "env-access"},
			check{"api.credentials.access_key", "env-access", func(c *Config) any { return c.API.AccessKey }, "env-access"}},
		{"TRAINS_API_ACCESS_KEY", map[string]string{"TRAINS_API_ACCESS_KEY": "trains-access"},
			check{"api.credentials.access_key", "trains-access", func(c *Config) any { return c.API.AccessKey }, "trains-access"}},
		{"CLEARML_API_SECRET_KEY", map[string]string{"CLEARML_API_SECRET_KEY": " env-secret "},
			check{"api.credentials.secret_key", "env-secret", func(c *Config) any { return c.API.SecretKey }, "env-secret"}},
		{"TRAINS_API_SECRET_KEY", map[string]string{"TRAINS_API_SECRET_KEY": "trains-secret"},
			check{"api.credentials.secret_key", "trains-secret", func(c *Config) any { return c.API.SecretKey }, "trains-secret"}},
		{"CLEARML_AUTH_TOKEN", map[string]string{"CLEARML_AUTH_TOKEN": "jwt.token.here"},
			check{"", "", func(c *Config) any { return c.API.AuthToken }, "jwt.token.here"}},
		{"CLEARML_API_HOST_VERIFY_CERT", map[string]string{"CLEARML_API_HOST_VERIFY_CERT": "off"},
			check{"", "", func(c *Config) any { return c.API.VerifyCertificate }, false}},
		{"TRAINS_API_HOST_VERIFY_CERT", map[string]string{"TRAINS_API_HOST_VERIFY_CERT": "0"},
			check{"", "", func(c *Config) any { return c.API.VerifyCertificate }, false}},
		{"CLEARML_API_DEFAULT_REQ_METHOD", map[string]string{"CLEARML_API_DEFAULT_REQ_METHOD": "put"},
			check{"api.http.default_method", "put", func(c *Config) any { return c.API.DefaultMethod }, "PUT"}},
		{"CLEARML_WORKER_NAME", map[string]string{"CLEARML_WORKER_NAME": "env-name"},
			check{"agent.worker_name", "env-name", func(c *Config) any { return c.Agent.WorkerName }, "env-name"}},
		{"TRAINS_WORKER_NAME", map[string]string{"TRAINS_WORKER_NAME": "trains-name"},
			check{"agent.worker_name", "trains-name", func(c *Config) any { return c.Agent.WorkerName }, "trains-name"}},
		{"CLEARML_WORKER_ID", map[string]string{"CLEARML_WORKER_ID": "env-id"},
			check{"agent.worker_id", "env-id", func(c *Config) any { return c.Agent.WorkerID }, "env-id"}},
		{"TRAINS_WORKER_ID", map[string]string{"TRAINS_WORKER_ID": "trains-id"},
			check{"agent.worker_id", "trains-id", func(c *Config) any { return c.Agent.WorkerID }, "trains-id"}},
		{"CLEARML_CUDA_VERSION", map[string]string{"CLEARML_CUDA_VERSION": "12.1", "CUDA_VERSION": "11.0"},
			check{"agent.cuda_version", "12.1", func(c *Config) any { return c.Agent.CUDAVersion }, "12.1"}},
		{"TRAINS_CUDA_VERSION", map[string]string{"TRAINS_CUDA_VERSION": "11.7", "CUDA_VERSION": "11.0"},
			check{"agent.cuda_version", "11.7", func(c *Config) any { return c.Agent.CUDAVersion }, "11.7"}},
		{"CUDA_VERSION", map[string]string{"CUDA_VERSION": "11.0"},
			check{"agent.cuda_version", "11.0", func(c *Config) any { return c.Agent.CUDAVersion }, "11.0"}},
		{"CLEARML_CUDNN_VERSION", map[string]string{"CLEARML_CUDNN_VERSION": "8.9"},
			check{"agent.cudnn_version", "8.9", func(c *Config) any { return c.Agent.CUDNNVersion }, "8.9"}},
		{"TRAINS_CUDNN_VERSION", map[string]string{"TRAINS_CUDNN_VERSION": "8.1"},
			check{"agent.cudnn_version", "8.1", func(c *Config) any { return c.Agent.CUDNNVersion }, "8.1"}},
		{"CUDNN_VERSION", map[string]string{"CUDNN_VERSION": "8.0"},
			check{"agent.cudnn_version", "8.0", func(c *Config) any { return c.Agent.CUDNNVersion }, "8.0"}},
		{"CLEARML_CPU_ONLY", map[string]string{"CLEARML_CPU_ONLY": "Yes"},
			check{"agent.cpu_only", "true", func(c *Config) any { return c.Agent.CPUOnly }, true}},
		{"TRAINS_CPU_ONLY", map[string]string{"TRAINS_CPU_ONLY": "1"},
			check{"agent.cpu_only", "true", func(c *Config) any { return c.Agent.CPUOnly }, true}},
		{"CPU_ONLY", map[string]string{"CPU_ONLY": "t"},
			check{"agent.cpu_only", "true", func(c *Config) any { return c.Agent.CPUOnly }, true}},
		{"CLEAMRL_AGENT_CRASH_ON_EXCEPTION", map[string]string{"CLEAMRL_AGENT_CRASH_ON_EXCEPTION": "true"},
			check{"agent.crash_on_exception", "true", func(c *Config) any { return c.Agent.CrashOnException }, true}},
		{"CLEARML_AGENT_CRASH_ON_EXCEPTION", map[string]string{"CLEARML_AGENT_CRASH_ON_EXCEPTION": "on"},
			check{"agent.crash_on_exception", "true", func(c *Config) any { return c.Agent.CrashOnException }, true}},
		{"CLEARML_AGENT_GIT_USER", map[string]string{"CLEARML_AGENT_GIT_USER": "env-git-user"},
			check{"agent.git_user", "file-git-user", func(c *Config) any { return c.Agent.GitUser }, "env-git-user"}},
		{"TRAINS_AGENT_GIT_USER", map[string]string{"TRAINS_AGENT_GIT_USER": "trains-git-user"},
			check{"", "", func(c *Config) any { return c.Agent.GitUser }, "trains-git-user"}},
		{"CLEARML_AGENT_GIT_PASS", map[string]string{"CLEARML_AGENT_GIT_PASS": "env-git-pass"},
			check{"", "", func(c *Config) any { return c.Agent.GitPass }, "env-git-pass"}},
		{"TRAINS_AGENT_GIT_PASS", map[string]string{"TRAINS_AGENT_GIT_PASS": "trains-git-pass"},
			check{"", "", func(c *Config) any { return c.Agent.GitPass }, "trains-git-pass"}},
		{"CLEARML_AGENT_GIT_HOST", map[string]string{"CLEARML_AGENT_GIT_HOST": "github.com"},
			check{"", "", func(c *Config) any { return c.Agent.GitHost }, "github.com"}},
		{"CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", map[string]string{"CLEARML_AGENT_QUEUE_POLL_FREQ_SEC": "0.5"},
			check{"", "", func(c *Config) any { return c.Agent.PollInterval }, 500 * time.Millisecond}},
		{"CLEARML_AGENT_STATUS_REPORT_FREQ_SEC", map[string]string{"CLEARML_AGENT_STATUS_REPORT_FREQ_SEC": "90"},
			check{"", "", func(c *Config) any { return c.Agent.StatusReportInterval }, 90 * time.Second}},
		{"CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION", map[string]string{"CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION": "false"},
			check{"", "", func(c *Config) any { return c.Agent.ApplyEnvironment }, false}},
		{"CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION", map[string]string{"CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION": "no"},
			check{"", "", func(c *Config) any { return c.Agent.ApplyFiles }, false}},
		{"AWS_ACCESS_KEY_ID", map[string]string{"AWS_ACCESS_KEY_ID": "env-aws-key"},
			check{"sdk.aws.s3.key", "env-aws-key", nil, nil}},
		{"AWS_SECRET_ACCESS_KEY", map[string]string{"AWS_SECRET_ACCESS_KEY": "env-aws-secret"},
			check{"sdk.aws.s3.secret", "env-aws-secret", nil, nil}},
		{"AWS_DEFAULT_REGION", map[string]string{"AWS_DEFAULT_REGION": "us-east-2"},
			check{"sdk.aws.s3.region", "us-east-2", nil, nil}},
		{"GOOGLE_APPLICATION_CREDENTIALS", map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/env/creds.json"},
			check{"sdk.google.storage.credentials_json", "/env/creds.json", nil, nil}},
		{"AZURE_STORAGE_ACCOUNT and KEY are appended", map[string]string{"AZURE_STORAGE_ACCOUNT": "env-acct", "AZURE_STORAGE_KEY": "env-acct-key"},
			check{"", "", func(c *Config) any {
				v, _ := c.Raw.Get("sdk.azure.storage.containers")
				return v
			}, []any{
				map[string]any{"account_name": "file-acct", "account_key": "file-acct-key"},
				map[string]any{"account_name": "env-acct", "account_key": "env-acct-key"},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, testOptions(home, tt.env))
			if tt.want.key != "" && tt.want.want != "" {
				if got := c.Raw.String(tt.want.key, "<unset>"); got != tt.want.want {
					t.Errorf("%s = %q, want %q", tt.want.key, got, tt.want.want)
				}
			}
			if tt.want.field != nil {
				if got := tt.want.field(c); !reflect.DeepEqual(got, tt.want.typed) {
					t.Errorf("typed value = %#v, want %#v", got, tt.want.typed)
				}
			}
		})
	}

	// Without variables the file's values stand.
	c := mustLoad(t, testOptions(home, nil))
	if c.API.Server != "https://file-api.example.com" || c.Agent.WorkerID != "file-id" || c.Agent.GitPass != "file-git-pass" ||
		c.API.DefaultMethod != "POST" || c.Agent.PollInterval != 7*time.Second || c.Agent.StatusReportInterval != 40*time.Second {
		t.Errorf("file values lost: API %+v, Agent %+v", c.API, c.Agent)
	}
}

func TestEnvVarErrors(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, name := range []string{
		"CLEARML_CPU_ONLY", "CLEAMRL_AGENT_CRASH_ON_EXCEPTION", "CLEARML_API_HOST_VERIFY_CERT",
		"CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION", "CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION",
		"CLEARML_NO_DEFAULT_SERVER", "CLEARML_AGENT_QUEUE_POLL_FREQ_SEC", "CLEARML_AGENT_STATUS_REPORT_FREQ_SEC",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(testOptions(home, map[string]string{name: "maybe"}))
			want := "loading configuration: environment variable " + name + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Load() error = %v, want prefix %q", err, want)
			}
		})
	}
}

func TestServerFallbacks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file         string
		env                map[string]string
		server, web, files string
	}{
		{"api.host when api_server is unset", `api.host: "http://h.example.com:8008/"`, nil,
			"http://h.example.com:8008", "http://h.example.com:8080", "http://h.example.com:8081"},
		{"api. host derives app. and files.", `api.api_server: "https://api.corp.example.com"`, nil,
			"https://api.corp.example.com", "https://app.corp.example.com", "https://files.corp.example.com"},
		{"no derivation possible", `api.api_server: "https://clearml.corp.example.com"`, nil,
			"https://clearml.corp.example.com", "", ""},
		{"configured web server gives the files server", "api { api_server: \"https://x.example.com\", web_server: \"https://web.example.com\" }", nil,
			"https://x.example.com", "https://web.example.com", "https://web.example.com:8081"},
		{"CLEARML_NO_DEFAULT_SERVER=false falls back to the demo server", "", map[string]string{"CLEARML_NO_DEFAULT_SERVER": "false"},
			demoAPIServer, demoWebServer, demoFilesServer},
		{"CLEARML_NO_DEFAULT_SERVER unset leaves no server", "", nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			writeFile(t, home, "clearml.conf", tt.file)
			c := mustLoad(t, testOptions(home, tt.env))
			if c.API.Server != tt.server || c.API.WebServer != tt.web || c.API.FilesServer != tt.files {
				t.Errorf("servers = %q, %q, %q; want %q, %q, %q",
					c.API.Server, c.API.WebServer, c.API.FilesServer, tt.server, tt.web, tt.files)
			}
		})
	}
}
