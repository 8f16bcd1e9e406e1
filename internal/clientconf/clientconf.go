// Package clientconf writes the client configuration file (clearml.conf)
// that points ClearML clients (the Python SDK, the upstream agent, our
// daemon) at a server with a set of credentials.
package clientconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// header starts every file Render writes.
const header = `# ClearML client configuration, written by "clearml-agent server"`

// Client is what a client needs to reach a server.
type Client struct {
	APIServer   string
	WebServer   string
	FilesServer string
	AccessKey   string
	SecretKey   string
}

// Render returns the HOCON text of a clearml.conf for c.
func Render(c Client) string {
	q := strconv.Quote
	return fmt.Sprintf(header+` on %s.
# Use it with: export CLEARML_CONFIG_FILE=<this file>
# It holds a secret key: keep it private (mode 0600).
api {
    api_server: %s
    web_server: %s
    files_server: %s
    credentials {
        "access_key" = %s
        "secret_key" = %s
    }
}
`, time.Now().UTC().Format(time.RFC3339), q(c.APIServer), q(c.WebServer), q(c.FilesServer), q(c.AccessKey), q(c.SecretKey))
}

// Write stores the configuration at path with mode 0600, atomically (a
// reader never sees half a file).
func Write(path string, c Client) error {
	return writeAtomic(path, Render(c))
}

func writeAtomic(path, text string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating config folder: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".clearml.conf.*")
	if err != nil {
		return fmt.Errorf("writing client config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing client config: %w", err)
	}
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return fmt.Errorf("writing client config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing client config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing client config: %w", err)
	}
	return nil
}

// UpdateFilesServer rewrites files_server in a configuration this package
// wrote, from old to new, and reports whether it changed the file. Other
// files (edited by hand, or with another files_server) are left alone.
func UpdateFilesServer(path, old, new string) (bool, error) {
	return UpdateServer(path, "files_server", old, new)
}

// UpdateServer rewrites one address (files_server, web_server) in a
// configuration this package wrote, from old to new, and reports whether
// it changed the file. Other files are left alone.
func UpdateServer(path, key, old, new string) (bool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("reading client config: %w", err)
	}
	text := string(raw)
	line := "    " + key + ": " + strconv.Quote(old) + "\n"
	if !strings.HasPrefix(text, header) || !strings.Contains(text, line) {
		return false, nil
	}
	text = strings.Replace(text, line, "    "+key+": "+strconv.Quote(new)+"\n", 1)
	if err := writeAtomic(path, text); err != nil {
		return false, err
	}
	return true, nil
}

// Agent is the agent section `clearml-agent init` writes.
type Agent struct {
	GitUser, GitPass string
	ExtraIndexURLs   []string
}

// RenderAgent returns a clearml.conf for the agent: the client section,
// then git credentials and extra package indexes.
func RenderAgent(c Client, a Agent) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, `# CLEARML-AGENT configuration file, written by "clearml-agent init" on %s.
# It holds a secret key: keep it private (mode 0600). Every agent setting can be added below
# (see "clearml-agent config" for the effective values).
api {
    # api_server is the API server (port 8008 on the reference server), not the web app.
    api_server: %s
    web_server: %s
    files_server: %s
    # Override with the environment: CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY
    credentials {
        "access_key" = %s
        "secret_key" = %s
    }
}
agent {
    # git credentials for https repositories; leave empty for SSH keys
    git_user: %s
    git_pass: %s
    package_manager {
        extra_index_url: [`, time.Now().UTC().Format(time.RFC3339), q(c.APIServer), q(c.WebServer), q(c.FilesServer),
		q(c.AccessKey), q(c.SecretKey), q(a.GitUser), q(a.GitPass))
	for i, u := range a.ExtraIndexURLs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q(u))
	}
	b.WriteString("]\n    }\n}\n")
	return b.String()
}

// WriteAgent stores RenderAgent's text at path with mode 0600, atomically.
func WriteAgent(path string, c Client, a Agent) error {
	return writeAtomic(path, RenderAgent(c, a))
}
