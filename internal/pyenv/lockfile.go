package pyenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// lockFile reports whether the repository's poetry.lock should install the
// environment: the task has no requirements of its own, the repository has
// pyproject.toml and poetry.lock, and poetry is installed. It returns the
// pseudo requirement line that keys the cache on the lock's content.
// (A uv.lock is read by requirements(): its pinned versions go to pip.)
func (p *prep) lockFile(taskRequirements string) (string, bool) {
	if strings.TrimSpace(p.r.Requirements) != "" || p.r.RepoDir == "" {
		return "", false
	}
	lock, err1 := os.ReadFile(filepath.Join(p.r.RepoDir, "poetry.lock"))
	project, err2 := os.ReadFile(filepath.Join(p.r.RepoDir, "pyproject.toml"))
	if err1 != nil || err2 != nil {
		return "", false
	}
	if _, err := exec.LookPath("poetry"); err != nil {
		p.logf("poetry.lock found but poetry is not installed: using pip and requirements.txt if any")
		return "", false
	}
	h := sha256.New()
	h.Write(lock)
	h.Write([]byte{0})
	h.Write(project)
	p.lockTool = "poetry"
	p.logf("using poetry.lock (poetry installs the environment)")
	return "poetry-lock=" + hex.EncodeToString(h.Sum(nil)), true
}

// lockInstall installs the locked dependencies into the venv at dir.
func (p *prep) lockInstall(ctx context.Context, dir string) error {
	poetry, err := exec.LookPath("poetry")
	if err != nil {
		return fmt.Errorf("pyenv: poetry: %w", err)
	}
	cmd := exec.CommandContext(ctx, poetry, "install", "--no-root", "--no-interaction")
	cmd.Dir = p.r.RepoDir
	env := []string{"VIRTUAL_ENV=" + dir, "POETRY_NO_INTERACTION=1", "POETRY_VIRTUALENVS_CREATE=false"}
	for _, kv := range p.env {
		if strings.HasPrefix(kv, "PATH=") {
			kv = "PATH=" + filepath.Join(dir, "bin") + string(os.PathListSeparator) + strings.TrimPrefix(kv, "PATH=")
		}
		if !strings.HasPrefix(kv, "VIRTUAL_ENV=") {
			env = append(env, kv)
		}
	}
	cmd.Env = withoutDesktopKeyring(env)
	out, err := cmd.CombinedOutput()
	p.log.Write(out)
	if err != nil {
		return &InstallError{Tool: "poetry install", Err: err, Detail: lastLines(string(out), 10)}
	}
	return nil
}

// withoutDesktopKeyring turns the Python keyring off for a poetry run
// (PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring) unless env picks
// a keyring backend (that variable, or a keyringrc.cfg where the keyring
// library reads it). poetry looks up every package source's credentials
// in the keyring; on a machine without a desktop session, a desktop
// backend (libsecret, Secret Service over D-Bus) fails with "Failed to
// unlock the item!" or waits for a prompt nobody answers, and the task
// fails. Credentials from POETRY_HTTP_BASIC_* or poetry's auth.toml still
// apply.
func withoutDesktopKeyring(env []string) []string {
	get := func(key string) string {
		v := ""
		for _, kv := range env {
			if val, ok := strings.CutPrefix(kv, key+"="); ok {
				v = val
			}
		}
		return v
	}
	if get("PYTHON_KEYRING_BACKEND") != "" {
		return env
	}
	configHome := get("XDG_CONFIG_HOME")
	if configHome == "" && get("HOME") != "" {
		configHome = filepath.Join(get("HOME"), ".config")
	}
	if configHome != "" {
		if _, err := os.Stat(filepath.Join(configHome, "python_keyring", "keyringrc.cfg")); err == nil {
			return env
		}
	}
	return append(env[:len(env):len(env)], "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
