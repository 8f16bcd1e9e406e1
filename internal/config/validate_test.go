package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/goclearml/agent/internal/clientconf"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		content   string
		env       map[string]string
		wantErr   error  // nil: valid
		wantField string // the FieldError's field
		wantMsg   string // the whole message, when not ""
	}{
		{
			name:    "server without credentials is valid",
			content: `api.api_server: "https://api.example.com"`,
		},
		{
			name:    "token only",
			env:     map[string]string{"CLEARML_API_HOST": "http://localhost:8008", "CLEARML_AUTH_TOKEN": "tok"},
			wantErr: nil,
		},
		{
			name:      "no server",
			content:   `api.credentials { access_key: a, secret_key: b }`,
			wantErr:   ErrNoServer,
			wantField: "api.api_server",
			wantMsg:   "could not find host server definition (missing ~/clearml.conf or environment CLEARML_API_HOST)",
		},
		{
			name:      "server without scheme",
			content:   `api.api_server: "localhost:8008"`,
			wantErr:   ErrInvalidURL,
			wantField: "api.api_server",
			wantMsg:   `api.api_server = "localhost:8008": not a valid server URL`,
		},
		{
			name:      "server with another scheme",
			env:       map[string]string{"CLEARML_API_HOST": "ftp://api.example.com"},
			wantErr:   ErrInvalidURL,
			wantField: "api.api_server",
		},
		{
			name:      "bad web server",
			content:   "api { api_server: \"https://a.example.com\", web_server: \"app.example.com\" }",
			wantErr:   ErrInvalidURL,
			wantField: "api.web_server",
		},
		{
			name:    "files server on an object store",
			content: "api { api_server: \"https://a.example.com\", files_server: \"s3://bucket/prefix\" }",
		},
		{
			name:      "unknown method",
			content:   "api { api_server: \"https://a.example.com\", http.default_method: delete }",
			wantErr:   ErrInvalidMethod,
			wantField: "api.http.default_method",
			wantMsg:   `api.http.default_method = "DELETE": api.http.default_method variable must be 'get', 'post' or 'put' (any case is allowed)`,
		},
		{
			name:      "unknown method from the environment",
			content:   `api.api_server: "https://a.example.com"`,
			env:       map[string]string{"CLEARML_API_DEFAULT_REQ_METHOD": "patch"},
			wantErr:   ErrInvalidMethod,
			wantField: "api.http.default_method",
		},
		{
			name:      "negative interval",
			content:   "api.api_server: \"https://a.example.com\"\nagent.task_ping_interval_sec: -1",
			wantErr:   ErrNegative,
			wantField: "agent.task_ping_interval_sec",
		},
		{
			name:    "zero ping interval disables pinging",
			content: "api.api_server: \"https://a.example.com\"\nagent.task_ping_interval_sec: 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			writeFile(t, home, "clearml.conf", tt.content)
			c := mustLoad(t, testOptions(home, tt.env))
			err := c.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.wantField {
				t.Errorf("Validate() = %#v, want a FieldError for %s", err, tt.wantField)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("Validate() message = %q\nwant %q", err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", "api.http.default_method: head\nagent.abort_grace_period_sec: -2")
	err := mustLoad(t, testOptions(home, nil)).Validate()
	for _, want := range []error{ErrNoServer, ErrInvalidMethod, ErrNegative} {
		if !errors.Is(err, want) {
			t.Errorf("Validate() = %v, lacks %v", err, want)
		}
	}
}

// TestServerWrittenConfig loads the clearml.conf our server writes for its
// clients.
func TestServerWrittenConfig(t *testing.T) {
	t.Parallel()
	client := clientconf.Client{
		APIServer:   "http://127.0.0.1:8008",
		WebServer:   "http://127.0.0.1:8080",
		FilesServer: "http://127.0.0.1:8081",
		AccessKey:   "GK4J2EXAMPLEACCESS",
		SecretKey:   `s3cr3t"with\quotes=and#hash`,
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "clearml.conf")
	if err := clientconf.Write(path, client); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", `api.api_server: "http://wrong.example.com"`)
	c := mustLoad(t, testOptions(home, map[string]string{"CLEARML_CONFIG_FILE": path}))
	got := clientconf.Client{
		APIServer: c.API.Server, WebServer: c.API.WebServer, FilesServer: c.API.FilesServer,
		AccessKey: c.API.AccessKey, SecretKey: c.API.SecretKey,
	}
	if got != client {
		t.Errorf("loaded %+v\nwant   %+v", got, client)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if c.Location() != path {
		t.Errorf("Location() = %q, want %q", c.Location(), path)
	}
}
