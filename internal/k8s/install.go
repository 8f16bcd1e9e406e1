package k8s

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Install is the pods' init container (`clearml-agent k8s-install DIR`):
// it copies this binary into DIR, the volume shared with the task's
// container, and writes the container set-up script from
// CLEARML_K8S_SETUP_SCRIPT when it is set.
func Install(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("reading this executable: %w", err)
	}
	defer src.Close()
	tmp := filepath.Join(dir, ".clearml-agent.tmp")
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("installing the agent into %s: %w", dir, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("installing the agent into %s: %w", dir, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("installing the agent into %s: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "clearml-agent")); err != nil {
		return fmt.Errorf("installing the agent into %s: %w", dir, err)
	}
	if script := os.Getenv("CLEARML_K8S_SETUP_SCRIPT"); script != "" {
		if err := os.WriteFile(filepath.Join(dir, "setup.sh"), []byte(script), 0o644); err != nil {
			return fmt.Errorf("writing the set-up script: %w", err)
		}
	}
	return nil
}
