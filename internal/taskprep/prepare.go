// Package taskprep prepares a task to run on this host (spec 3.2 to 3.7):
// its private folder, its code (a checkout or the literal script), its
// Python environment, and the command, working folder and environment of
// its process. `execute` runs it, in a process of its own or inside the
// task's supervisor; in docker mode it runs inside the container.
package taskprep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/pyenv"
	"github.com/goclearml/agent/internal/vcs"
)

// GitOptions are the checkout settings of a configuration: the mirror
// cache (agent.vcs_cache.*; read_only, ours, is set in a container's
// configuration, which sees the host's mirror read-only), the git
// credentials and protocol. Progress goes to out.
func GitOptions(cfg *config.Config, out io.Writer, log *slog.Logger) vcs.Options {
	o := vcs.Options{
		CacheDir:    config.ExpandHome(cfg.Raw.String("agent.vcs_cache.path", "~/.clearml/vcs-cache")),
		Credentials: vcs.Credentials{User: cfg.Agent.GitUser, Password: cfg.Agent.GitPass, Host: cfg.Agent.GitHost},
		Log:         out, Logger: log,
	}
	if on, err := cfg.Raw.Bool("agent.vcs_cache.enabled", true); err == nil && !on {
		o.CacheDir = ""
	}
	if on, err := cfg.Raw.Bool("agent.vcs_cache.read_only", false); err == nil {
		o.ReadOnlyCache = on
	}
	if on, err := cfg.Raw.Bool("agent.force_git_ssh_protocol", false); err == nil {
		o.ForceSSH = on
	}
	return o
}

// options are the execute flags that shape the task's command.
type options struct {
	optimization int  // -O count
	standalone   bool // --standalone-mode: no installs
}

// prepared is a task ready to start.
type prepared struct {
	argv []string
	dir  string // working directory
	path []string
}

// setupError is a failure to prepare the task: the task fails with Reason.
type setupError struct{ reason string }

func (e *setupError) Error() string { return e.reason }

// prepare checks the task's code out (or writes its literal script),
// builds or reuses its Python environment, writes the resolved commit and
// the installed packages back to the task, and returns its command (spec
// 3.2 to 3.6). Phase timings go to the task log (out).
func prepare(ctx context.Context, cfg *config.Config, client *apiclient.Client, t *api.Task, opts options, out io.Writer, log *slog.Logger) (*prepared, error) {
	if t.Script == nil {
		return nil, &setupError{"can not run task without script information"}
	}
	str := func(k string) string { s, _ := t.Script[k].(string); return strings.TrimSpace(s) }
	entry, workingDir := str("entry_point"), str("working_dir")
	if workingDir == "" && strings.Contains(entry, ":") && !strings.HasPrefix(entry, "-") {
		workingDir, entry, _ = strings.Cut(entry, ":")
	}
	diff, _ := t.Script["diff"].(string)
	root, err := makeTaskDir(t.ID)
	if err != nil {
		return nil, &setupError{err.Error()}
	}
	timings := []string{}
	gitOpts := GitOptions(cfg, out, log)
	code := filepath.Join(root, "code")
	scriptDir := code
	switch repo := str("repository"); {
	case repo != "":
		start := time.Now()
		fmt.Fprintf(out, "Cloning %s\n", vcs.RedactURL(repo))
		res, err := vcs.Checkout(ctx, gitOpts, vcs.Source{Repository: repo, Branch: str("branch"), Tag: str("tag"), Commit: str("version_num"), Diff: diff}, code)
		if err != nil {
			var ve *vcs.Error
			if errors.As(err, &ve) {
				return nil, &setupError{"failed cloning repository: " + ve.Reason}
			}
			return nil, &setupError{"failed cloning repository: " + err.Error()}
		}
		hit := "cache miss"
		if res.CacheHit {
			hit = "cache hit"
		}
		timings = append(timings, fmt.Sprintf("clone %.2fs (%s)", time.Since(start).Seconds(), hit))
		if str("version_num") == "" && res.Commit != "" {
			// Record the commit that ran (spec 3.4 commit write-back).
			if err := client.Call(ctx, "2.5", "tasks.edit", map[string]any{"task": t.ID, "force": true,
				"script": map[string]any{"version_num": res.Commit}}, nil, apiclient.Default); err != nil {
				log.Warn("recording the resolved commit", "err", err)
			}
		}
	case vcs.IsLiteralScript(diff):
		path, err := vcs.LiteralScript(code, entry, diff)
		if err != nil {
			return nil, &setupError{"writing the task's script: " + err.Error()}
		}
		entry, scriptDir = filepath.Base(path), filepath.Dir(path)
		workingDir = ""
	default:
		return nil, &setupError{"task has neither a repository nor a script (script.repository and script.diff are empty)"}
	}
	wd, err := vcs.SafeJoin(code, workingDir)
	if err != nil {
		return nil, &setupError{"bad working directory: " + err.Error()}
	}
	if workingDir == "" {
		wd = scriptDir
	}
	if st, err := os.Stat(wd); err != nil || !st.IsDir() {
		return nil, &setupError{fmt.Sprintf("working directory %q does not exist in the repository", workingDir)}
	}
	binary := str("binary")
	base := filepath.Base(binary)
	if base == "bash" || base == "sh" || base == "zsh" || strings.HasSuffix(entry, ".sh") {
		script, err := vcs.SafeJoin(wd, entry)
		if err != nil {
			return nil, &setupError{"bad entry point: " + err.Error()}
		}
		shell := base
		if shell != "bash" && shell != "sh" && shell != "zsh" {
			shell = "bash"
		}
		fmt.Fprintf(out, "Environment: %s\n", strings.Join(timings, ", "))
		return &prepared{argv: []string{shell, script}, dir: wd}, nil
	}
	env, err := preparePython(ctx, cfg, client, gitOpts, t, binary, code, opts, out, log)
	if err != nil {
		return nil, err
	}
	timings = append(timings, env.summary)
	py := []string{env.python, "-u"}
	if opts.optimization > 0 {
		py = append(py, "-"+strings.Repeat("O", min(opts.optimization, 2)))
	}
	switch {
	case strings.HasPrefix(entry, "-m "):
		py = append(py, strings.Fields(entry)...)
	case entry == "":
		return nil, &setupError{"task has no entry point (script.entry_point is empty)"}
	default:
		script, err := vcs.SafeJoin(wd, entry)
		if err != nil {
			return nil, &setupError{"bad entry point: " + err.Error()}
		}
		if _, err := os.Stat(script); err != nil {
			return nil, &setupError{fmt.Sprintf("entry point %q not found in the repository", entry)}
		}
		if strings.HasSuffix(entry, ".ipynb") {
			code, skipped, err := notebookToScript(script)
			if err != nil {
				return nil, &setupError{err.Error()}
			}
			script = strings.TrimSuffix(script, ".ipynb") + ".py"
			if err := os.WriteFile(script, []byte(code), 0o644); err != nil {
				return nil, fmt.Errorf("writing the notebook's script: %w", err)
			}
			fmt.Fprintf(out, "Converted notebook %s to %s", entry, filepath.Base(script))
			if skipped > 0 {
				fmt.Fprintf(out, " (%d IPython magic or shell lines skipped)", skipped)
			}
			fmt.Fprintln(out)
		}
		py = append(py, script)
	}
	fmt.Fprintf(out, "Environment: %s\n", strings.Join(timings, ", "))
	return &prepared{argv: py, dir: wd, path: []string{wd, code}}, nil
}

type pythonEnv struct {
	python  string
	summary string
}

// preparePython builds or reuses the task's virtualenv and writes the
// installed packages back (tasks.set_requirements).
func preparePython(ctx context.Context, cfg *config.Config, client *apiclient.Client, gitOpts vcs.Options, t *api.Task, binary, code string, opts options, out io.Writer, log *slog.Logger) (*pythonEnv, error) {
	start := time.Now()
	var reqs string
	if r, ok := t.Script["requirements"].(map[string]any); ok {
		reqs, _ = r["pip"].(string)
	}
	var pipArgs []string
	if urls, err := cfg.Raw.StringList("agent.package_manager.extra_index_url"); err == nil {
		for _, u := range urls {
			pipArgs = append(pipArgs, "--extra-index-url", u)
		}
	}
	pipArgs = append(pipArgs, strings.Fields(os.Getenv("CLEARML_EXTRA_PIP_INSTALL_FLAGS"))...)
	gitEnv, cleanup, err := vcs.Env(gitOpts)
	if err != nil {
		return nil, fmt.Errorf("preparing git credentials for pip: %w", err)
	}
	defer cleanup()
	skip := os.Getenv("CLEARML_AGENT_SKIP_PIP_VENV_INSTALL") != "" || os.Getenv("CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL") != ""
	if p := os.Getenv("CLEARML_AGENT_SKIP_PIP_VENV_INSTALL"); p != "" && filepath.IsAbs(p) {
		binary = p
	}
	cacheDir := config.ExpandHome(cfg.Raw.String("agent.venvs_cache.path", "~/.clearml/venvs-cache"))
	maxEntries, _ := cfg.Raw.Int("agent.venvs_cache.max_entries", 10)
	system, _ := cfg.Raw.Bool("agent.package_manager.system_site_packages", false)
	env, err := pyenv.Prepare(ctx, pyenv.Options{
		CacheDir: cacheDir, WorkDir: config.ExpandHome(cfg.Raw.String("agent.venvs_dir", "~/.clearml/venvs-builds")),
		MaxEntries: int(maxEntries), PipArgs: pipArgs, SystemSitePackages: system, Log: out, Logger: log,
		Env: append(os.Environ(), gitEnv...),
	}, pyenv.Request{Binary: binary, DefaultPython: cmp.Or(cfg.Agent.DefaultPython, os.Getenv("LOCAL_PYTHON")), Requirements: reqs, RepoDir: code,
		CUDAVersion: cfg.Agent.CUDAVersion, SkipInstall: skip, Standalone: opts.standalone})
	if err != nil {
		return nil, &setupError{"could not install the task's requirements: " + strings.TrimPrefix(err.Error(), "pyenv: ")}
	}
	// The environment stays in use until the task ends; this process
	// becomes the task (exec), so the lease is released by the kernel then.
	if env.Frozen != "" {
		frozen := map[string]any{"pip": env.Frozen}
		if reqs != "" {
			frozen["org_pip"] = reqs
		}
		if r, ok := t.Script["requirements"].(map[string]any); ok {
			if org, ok := r["org_pip"].(string); ok && org != "" {
				frozen["org_pip"] = org
			}
		}
		if err := client.Call(ctx, "2.5", "tasks.set_requirements", map[string]any{"task": t.ID, "requirements": frozen}, nil, apiclient.Default); err != nil {
			log.Warn("writing the installed packages back to the task", "err", err)
		}
	}
	hit := "cache miss"
	if env.CacheHit {
		hit = "cache hit"
	}
	if env.Dir == "" {
		hit = "system interpreter"
	}
	return &pythonEnv{python: env.Python, summary: fmt.Sprintf("environment %.2fs (%s, install %.2fs)", time.Since(start).Seconds(), hit, env.Timings["install"].Seconds())}, nil
}
