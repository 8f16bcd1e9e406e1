package taskprep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/config"
)

// loadConf loads a clearml.conf with the given text and no environment.
func loadConf(t *testing.T, text string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clearml.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cfg, err := config.Load(config.LoadOptions{ConfigFile: path, Home: home,
		LookupEnv: func(string) (string, bool) { return "", false }, Environ: func() []string { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDockerSettings: docker mode's settings are read as written, and a bad
// one is a one-line error that names its key.
func TestDockerSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, conf string
		wantErr    string // "" when the settings are valid
		check      func(t *testing.T, cc ContainerChoice)
	}{
		{name: "defaults", check: func(t *testing.T, cc ContainerChoice) {
			if !cc.Merge.ExtraPrecedesTask || cc.ForcePull || !cc.Init.OpenCVLibs {
				t.Errorf("defaults: %+v", cc)
			}
		}},
		{name: "image, arguments and extra arguments",
			conf: `agent { default_docker { image: "python:3.11", arguments: ["-e A=1", "--ipc=host"] }, extra_docker_arguments: "--shm-size 1g", docker_force_pull: true }`,
			check: func(t *testing.T, cc ContainerChoice) {
				if cc.Defaults.Image != "python:3.11" || strings.Join(cc.Defaults.Arguments, " ") != "-e A=1 --ipc=host" {
					t.Errorf("defaults: %+v", cc.Defaults)
				}
				if strings.Join(cc.Extra, " ") != "--shm-size 1g" || !cc.ForcePull {
					t.Errorf("extra %q, force pull %v", cc.Extra, cc.ForcePull)
				}
			}},
		{name: "script as one string", conf: `agent.docker_init_bash_script: "echo a\necho b"`,
			check: func(t *testing.T, cc ContainerChoice) {
				if len(cc.Init.Init) != 2 || cc.Init.Init[1] != "echo b" {
					t.Errorf("init script: %q", cc.Init.Init)
				}
			}},
		{name: "bad filter", conf: `agent.docker_args_filters: ["(unclosed"]`, wantErr: "agent.docker_args_filters"},
		{name: "bad boolean", conf: `agent.docker_force_pull: "sometimes"`, wantErr: "docker_force_pull"},
		{name: "bad quoting in an argument", conf: `agent.extra_docker_arguments: ["-e 'A=1"]`, wantErr: "agent.extra_docker_arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cc, err := ReadContainerChoice(loadConf(t, tc.conf), nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("error %v, want one line naming %q", err, tc.wantErr)
			case tc.check != nil:
				tc.check(t, cc)
			}
		})
	}
}

// TestDockerCachesAndCleanup: the cache isolation and cleanup settings,
// and their refusals.
func TestDockerCachesAndCleanup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, conf, wantErr string
		shared              bool
		interval            time.Duration
	}{
		{name: "defaults", interval: time.Hour},
		{name: "shared caches", conf: `agent { docker_cache_isolation: shared, docker_cleanup.interval_sec: 60 }`, shared: true, interval: time.Minute},
		{name: "unknown isolation", conf: `agent.docker_cache_isolation: none`, wantErr: "not task or shared"},
		{name: "venvs cache is the host's", conf: `agent { docker_cache_isolation: shared, docker_venvs_cache: "/tmp/v", venvs_cache.path: "/tmp/v/" }`,
			wantErr: "must not be the host's venv cache"},
		{name: "negative age", conf: `agent.docker_cleanup.container_max_age_sec: -1`, wantErr: "container_max_age_sec must not be negative"},
		{name: "negative disk", conf: `agent.docker_cleanup.min_free_disk_gb: -2`, wantErr: "min_free_disk_gb must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := loadConf(t, tc.conf)
			caches, cerr := containerCaches(cfg, true, true)
			policy, perr := cleanupPolicy(cfg)
			err := cerr
			if err == nil {
				err = perr
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if caches.Shared != tc.shared || (tc.shared && caches.Venvs == "") || policy.Interval != tc.interval || !policy.Enabled {
				t.Errorf("caches %+v, cleanup %+v", caches, policy)
			}
		})
	}
}
