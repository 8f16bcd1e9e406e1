package config

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The secrets planted in testdata/secrets.conf and the environment below.
var plantedSecrets = []string{
	"apipw-7f3e",                  // password in the api_server URL
	"sk-live-4f8a9c2e",            // api.credentials.secret_key
	"ghp_gitpass_b71c",            // agent.git_pass
	"idxpw-93ad",                  // password in extra_index_url
	"dockersecret-11aa",           // -e CLEARML_API_SECRET_KEY=
	"awsdock-22bb",                // --env=AWS_SECRET_ACCESS_KEY=
	"aws-s3-secret-33cc",          // sdk.aws.s3.secret
	"bucket-secret-44dd",          // sdk.aws.s3.credentials.0.secret
	"azure-key-55ee",              // account_key
	"postgres://u:dbpw-66ff@db/x", // environment value
	"plain-env-value",             // environment value
	"file-contents-77gg",          // files.cfg.contents
	"env-token-88hh",              // CLEARML_AUTH_TOKEN
	"env-gitpass-99ii",            // CLEARML_AGENT_GIT_PASS (wins over the file)
	"extra-hidden-00jj",           // -e MY_TOKEN_VAR= named by CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV
}

func loadSecrets(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "secrets.conf"))
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", string(data))
	return mustLoad(t, testOptions(home, map[string]string{
		"CLEARML_AUTH_TOKEN":                 "env-token-88hh",
		"CLEARML_AGENT_GIT_PASS":             "env-gitpass-99ii",
		"CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV": "MY_TOKEN_VAR OTHER",
		"CLEARML_AGENT__AGENT__EXTRA_DOCKER_ARGUMENTS": `["-e", "CLEARML_API_SECRET_KEY=dockersecret-11aa", "-e", "VISIBLE=yes=1",` +
			` "--env=AWS_SECRET_ACCESS_KEY=awsdock-22bb", "-e", "MY_TOKEN_VAR=extra-hidden-00jj", "https://u:pw2@reg.example.com/img",` +
			` "-e", "CLEARML_DOCKER_IMAGE=img:1 -e CLEARML_AGENT_GIT_PASS=nested-12kk", "-e", "PROXY=http://u:proxypw@p:3128"]`,
	}))
}

func TestMaskedHidesSecrets(t *testing.T) {
	t.Parallel()
	c := loadSecrets(t)
	out := c.Masked()
	for _, s := range append(plantedSecrets, "dbpw-66ff", "pw2") {
		if strings.Contains(out, s) {
			t.Errorf("Masked() shows secret %q", s)
		}
	}
	lines := strings.Split(out, "\n")
	for _, want := range []string{
		"api.api_server = https://admin:********@api.example.com",
		"api.credentials.access_key = AKVISIBLE123",
		"api.credentials.secret_key = ****",
		"api.host = https://admin:********@api.example.com",
		"api.version = 1.5",
		"api.http.max_req_size = 15728640",
		"agent.git_user = robot",
		"agent.git_pass = ****",
		"agent.enable_git_ask_pass = true",
		"agent.package_manager.extra_index_url.0 = https://pypi:********@pypi.example.com/simple",
		"agent.package_manager.extra_index_url.1 = https://plain.example.com/simple",
		"agent.extra_docker_arguments.0 = -e",
		"agent.extra_docker_arguments.1 = CLEARML_API_SECRET_KEY\\=********",
		"agent.extra_docker_arguments.3 = VISIBLE\\=yes\\=1",
		"agent.extra_docker_arguments.4 = --env\\=AWS_SECRET_ACCESS_KEY\\=********",
		"agent.extra_docker_arguments.6 = MY_TOKEN_VAR\\=********",
		"agent.extra_docker_arguments.7 = https://u:********@reg.example.com/img",
		"agent.extra_docker_arguments.9 = CLEARML_DOCKER_IMAGE\\=img:1 -e CLEARML_AGENT_GIT_PASS\\=********",
		"agent.extra_docker_arguments.11 = PROXY\\=http://u:********@p:3128",
		"agent.sanitize_config_printout = ****",
		"agent.worker_name = testhost",
		"sdk.aws.s3.key = AWSKEYVISIBLE",
		"sdk.aws.s3.secret = ****",
		"sdk.aws.s3.credentials.0.key = bucketkey",
		"sdk.aws.s3.credentials.0.secret = ****",
		"sdk.azure.storage.containers.0.account_key = ****",
		"sdk.azure.storage.containers.0.account_name = acct",
		"environment.DB_URL = ****",
		"environment.FLAG = ****",
		"environment.PLAIN = ****",
		"files.cfg.contents = ****",
		"files.cfg.path = /tmp/x.json",
		"sdk.storage.direct_access.0.url = file://*",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("Masked() lacks line %q", want)
		}
	}
	if !isTreeOrder(lines) {
		t.Errorf("Masked() lines are not in key order")
	}
	if again := c.Masked(); again != out {
		t.Errorf("Masked() is not deterministic")
	}
	// Masking works on a copy.
	if c.Raw.String("api.credentials.secret_key", "") != "sk-live-4f8a9c2e" {
		t.Errorf("Masked() modified Raw")
	}
}

// isTreeOrder reports whether lines are sorted by their key segments (so
// "a.b.c" comes before "a.bb"), list indexes numerically, which is what a
// sorted tree walk yields.
func isTreeOrder(lines []string) bool {
	return slices.IsSortedFunc(lines, func(a, b string) int {
		ka, _, _ := strings.Cut(a, " = ")
		kb, _, _ := strings.Cut(b, " = ")
		return slices.CompareFunc(strings.Split(ka, "."), strings.Split(kb, "."), func(x, y string) int {
			nx, errx := strconv.Atoi(x)
			ny, erry := strconv.Atoi(y)
			if errx == nil && erry == nil {
				return nx - ny
			}
			return strings.Compare(x, y)
		})
	})
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	c := loadSecrets(t)
	got := c.Secrets()
	for _, s := range append(plantedSecrets, "dbpw-66ff", "pw2") {
		if !slices.Contains(got, s) {
			t.Errorf("Secrets() lacks %q", s)
		}
	}
	for _, s := range []string{"", "secret", "pass", "^environment$", "43200", "AKVISIBLE123", "robot", "true", hiddenValue, hiddenArg} {
		if slices.Contains(got, s) {
			t.Errorf("Secrets() contains %q", s)
		}
	}
	if !slices.IsSortedFunc(got, func(a, b string) int { return len(b) - len(a) }) {
		t.Errorf("Secrets() is not longest first: %q", got)
	}
	seen := map[string]bool{}
	for _, s := range got {
		if seen[s] {
			t.Errorf("Secrets() repeats %q", s)
		}
		seen[s] = true
	}
}

func TestMaskRulesFromConfig(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", `
agent.sanitize_config_printout {
    hide_secrets: ["^key$"]
    hide_secrets_recursive: []
    urls: []
}
sdk.aws.s3.key: "AKIA-VISIBLE-NO-MORE"
agent.git_pass: "now-visible"
environment { A: shown }
agent.package_manager.extra_index_url: "https://u:stillhidden@x.example.com"
`)
	c := mustLoad(t, testOptions(home, nil))
	out := c.Masked()
	for _, want := range []string{
		"sdk.aws.s3.key = ****",
		"agent.git_pass = now-visible",
		"environment.A = shown",
		// URL passwords are hidden everywhere, whatever the urls rule says.
		"agent.package_manager.extra_index_url = https://u:********@x.example.com",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("Masked() lacks %q", want)
		}
	}
	if !slices.Contains(c.Secrets(), "AKIA-VISIBLE-NO-MORE") || !slices.Contains(c.Secrets(), "now-visible") {
		t.Errorf("Secrets() = %q, want the key and the git password", c.Secrets())
	}

	writeFile(t, home, "clearml.conf", `agent.sanitize_config_printout.hide_secrets: ["(?<=x)y"]`)
	if _, err := Load(testOptions(home, nil)); err == nil ||
		!strings.Contains(err.Error(), `key "agent.sanitize_config_printout.hide_secrets[0]": invalid regular expression`) {
		t.Errorf("Load() error = %v, want an invalid regular expression error", err)
	}
}

func TestPrintout(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	path := writeFile(t, home, "clearml.conf", `api.api_server: "http://localhost:8008"
agent.note: "a=b!c#d"
agent.float_small: 0.00001
agent.float_big: 1e20
agent.nothing: null
agent.empty {}
logging { version: 1, loggers.urllib3 { level: WARNING, propagate: false } }
env: "default"
`)
	c := mustLoad(t, testOptions(home, nil))
	out := c.Printout("1.9.2")
	head := "Current configuration (clearml_agent v1.9.2, location: " + path + "):\n----------------------\n"
	if !strings.HasPrefix(out, head) || !strings.HasSuffix(out, "\n") {
		t.Errorf("Printout() = %q..., want header %q", out[:min(len(out), 120)], head)
	}
	for _, want := range []string{
		"agent.note = a\\=b\\!c\\#d\n", "api.http.retries.backoff_max = 120.0\n",
		"agent.float_small = 1e-05\n", "agent.float_big = 1e+20\n", "logging.loggers.urllib3.propagate = false\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Printout() lacks %q", want)
		}
	}
	// Upstream drops these from the printout; null and empty objects print nothing.
	for _, absent := range []string{"logging.version", "urllib3.level", "\nenv =", "agent.nothing", "agent.empty"} {
		if strings.Contains(out, absent) {
			t.Errorf("Printout() shows %q", absent)
		}
	}
}
