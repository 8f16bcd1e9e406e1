// Package clientconf writes the client configuration file (clearml.conf)
// that points ClearML clients (the Python SDK, the upstream agent, our
// daemon) at a server with a set of credentials.
package clientconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

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
	return fmt.Sprintf(`# ClearML client configuration, written by "clearml-agent server" on %s.
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
	if _, err := tmp.WriteString(Render(c)); err != nil {
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
