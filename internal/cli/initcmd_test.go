package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/config"
)

// init with flags and the secret in the environment writes a private
// clearml.conf that the other commands use.
func TestInitUnattended(t *testing.T) {
	e := newCmdEnv(t)
	t.Setenv("CLEARML_API_SECRET_KEY", e.secret)
	t.Setenv("CLEARML_AGENT_GIT_PASS", "git-secret")
	path := filepath.Join(t.TempDir(), "clearml.conf")
	var out, errOut bytes.Buffer
	code := MainIO([]string{"--config-file", path, "init", "--api-server", e.url, "--access-key", e.key, "--git-user", "bob",
		"--extra-index-url", "https://pkgs.example/simple"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if strings.Contains(out.String(), e.secret) || strings.Contains(out.String(), "git-secret") {
		t.Errorf("init printed a secret:\n%s", out.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("written file: %v %v", st, err)
	}
	cfg, err := config.Load(config.LoadOptions{ConfigFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Server != e.url || cfg.API.AccessKey != e.key || cfg.API.SecretKey != e.secret || cfg.Agent.GitUser != "bob" || cfg.Agent.GitPass != "git-secret" {
		t.Errorf("loaded back: %+v %+v", cfg.API, cfg.Agent)
	}
	if idx, _ := cfg.Raw.StringList("agent.package_manager.extra_index_url"); len(idx) != 1 || idx[0] != "https://pkgs.example/simple" {
		t.Errorf("extra_index_url = %v", idx)
	}
	t.Setenv("CLEARML_API_SECRET_KEY", "")
	out.Reset()
	if code := MainIO([]string{"--config-file", path, "tasks", "list"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("tasks list with the written file: exit %d %s", code, errOut.String())
	}
	// An existing file is left alone; --force replaces it and keeps a copy.
	out.Reset()
	MainIO([]string{"--config-file", path, "init", "--api-server", e.url, "--access-key", e.key}, strings.NewReader(""), &out, &errOut)
	if !strings.Contains(out.String(), "Configuration file already exists") {
		t.Errorf("init over an existing file:\n%s", out.String())
	}
	t.Setenv("CLEARML_API_SECRET_KEY", e.secret)
	if code := MainIO([]string{"--config-file", path, "init", "--force", "--api-server", e.url, "--access-key", e.key}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("init --force: exit %d %s", code, errOut.String())
	}
	if old, err := os.ReadFile(path + ".bak"); err != nil || !strings.Contains(string(old), "bob") {
		t.Errorf("no copy of the replaced file: %v", err)
	}
}

// The block the web app copies is pasted; the questions are answered on
// standard input; wrong credentials write nothing.
func TestInitPastedCredentials(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	block := "api {\n  web_server: " + e.url + "\n  api_server: " + e.url + "\n  files_server: " + e.url + "/files\n" +
		"  credentials {\n    \"access_key\" = \"" + e.key + "\"\n    \"secret_key\" = \"" + e.secret + "\"\n  }\n}\n"
	path := filepath.Join(t.TempDir(), "clearml.conf")
	var out, errOut bytes.Buffer
	code := MainIO([]string{"--config-file", path, "init"}, strings.NewReader(block+"alice\nalice-pass\n\n"), &out, &errOut)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	cfg, err := config.Load(config.LoadOptions{ConfigFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.AccessKey != e.key || cfg.API.Server != e.url || cfg.Agent.GitUser != "alice" || cfg.Agent.GitPass != "alice-pass" {
		t.Errorf("loaded back: %+v %+v", cfg.API, cfg.Agent)
	}
	bad := strings.Replace(block, e.secret, "wrong-secret", 1)
	other := filepath.Join(t.TempDir(), "clearml.conf")
	code = MainIO([]string{"--config-file", other, "init"}, strings.NewReader(bad+"\n\n"), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "the credentials do not work") {
		t.Fatalf("init with a wrong secret: exit %d %s", code, errOut.String())
	}
	if _, err := os.Stat(other); err == nil {
		t.Error("a file was written for wrong credentials")
	}
}

func TestDeriveHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, api, web, files string }{
		{"http://srv:8080", "http://srv:8008", "http://srv:8080", "http://srv:8081"},
		{"srv:8008", "http://srv:8008", "http://srv:8080", "http://srv:8081"},
		{"https://app.clear.ml", "https://api.clear.ml", "https://app.clear.ml", "https://files.clear.ml"},
		{"https://api.example.com/", "https://api.example.com", "https://app.example.com", "https://files.example.com"},
		{"http://10.0.0.5:9000", "http://10.0.0.5:9000", "http://10.0.0.5:9000", "http://10.0.0.5:9000/files"},
	} {
		api, web, files, err := deriveHosts(tc.in)
		if err != nil || api != tc.api || web != tc.web || files != tc.files {
			t.Errorf("deriveHosts(%q) = %q %q %q %v", tc.in, api, web, files, err)
		}
	}
	if _, _, _, err := deriveHosts("ftp://x"); err == nil {
		t.Error("ftp accepted")
	}
}

// config prints the effective configuration with the secret masked.
func TestConfigMasksSecrets(t *testing.T) {
	t.Parallel()
	e := newCmdEnv(t)
	out := e.mustRun("config")
	if !strings.Contains(out, "api.api_server = "+e.url) || !strings.Contains(out, e.key) || strings.Contains(out, e.secret) {
		t.Fatalf("config printout:\n%s", out)
	}
}
