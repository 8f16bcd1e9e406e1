package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/gitinfo"
)

const submitHead = `Usage: clearml-agent submit --script FILE [--project NAME] [--name NAME] [--queue NAME] [flags]
       clearml-agent submit --repo URL --script PATH [--branch B] [--commit C] [--cwd DIR] [flags]

Creates a task from a script and puts it in a queue, as the SDK's clearml-task
does, then prints the task's id on stdout.

A local script inside a git checkout is recorded as the checkout's remote URL
(origin), branch, commit and uncommitted changes ("git diff HEAD"), with the
entry point relative to the working folder, which is the script's folder
unless --cwd says otherwise. A script outside a checkout (or in one without
a remote or a commit) is stored whole in the task. With --repo, what is given
is recorded as is; the script is a path inside the repository.
`

// submitOptions are submit's flags.
type submitOptions struct {
	project, name, repo, branch, commit, script, cwd, queue string
	requirements, docker, dockerArgs, dockerSetup, taskType string
	binary                                                  string
	args, packages, tags                                    []string
	noRepo, createQueue                                     bool
}

func runSubmit(g args.Global, argv []string, stdout, stderr io.Writer) error {
	var o submitOptions
	f := newFlags("submit", submitHead)
	f.fs.StringVar(&o.project, "project", "", "the project's full `NAME` (created if missing)")
	f.fs.StringVar(&o.name, "name", "", "the task's `NAME` (default: the script's file name)")
	f.fs.StringVar(&o.repo, "repo", "", "the git repository's `URL`: record it instead of reading a local checkout")
	f.fs.StringVar(&o.branch, "branch", "", "the `BRANCH` to run (default: the checkout's current branch)")
	f.fs.StringVar(&o.commit, "commit", "", "the `COMMIT` to run (default: the checkout's HEAD)")
	f.fs.StringVar(&o.script, "script", "", "the script: a local `FILE`, or a path in the repository with --repo")
	f.fs.BoolVar(&o.noRepo, "no-repo", false, "store the script's content in the task instead of its git repository, commit and diff (our extension: for scripts whose commit is not pushed)")
	f.fs.StringVar(&o.cwd, "cwd", "", "the working `FOLDER`, relative to the repository root (default: the script's folder)")
	f.list(&o.args, "args", "the script's arguments as `NAME=VALUE` items, stored as hyper-parameters in section Args")
	f.fs.StringVar(&o.queue, "queue", "", "the queue's `NAME` or id (default: the server's default queue)")
	f.fs.BoolVar(&o.createQueue, "create-queue", false, "create the queue when it does not exist")
	f.fs.StringVar(&o.requirements, "requirements", "", "a requirements `FILE`; its text becomes the task's pip requirements")
	f.list(&o.packages, "packages", "pip `PACKAGE` specifications, added to the task's pip requirements")
	f.fs.StringVar(&o.docker, "docker", "", "the docker `IMAGE` to run the task in")
	f.fs.StringVar(&o.dockerArgs, "docker_args", "", "extra docker `ARGUMENTS`, one string (\"-e A=1 -v /a:/b\")")
	f.fs.StringVar(&o.dockerSetup, "docker_bash_setup_script", "", "a bash script `FILE` to run inside the container before the task")
	f.list(&o.tags, "tags", "the task's `TAG`s")
	f.fs.StringVar(&o.taskType, "task-type", "training", "the task `TYPE`: "+strings.Join(api.TaskTypes, ", "))
	f.fs.StringVar(&o.binary, "binary", "python3", "the `INTERPRETER` that runs the script")
	pos, err := f.parseArgs(argv, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &UsageError{Msg: fmt.Sprintf("submit: unexpected argument %q", pos[0])}
	}
	if strings.TrimSpace(o.script) == "" {
		return &UsageError{Msg: "submit: --script is required (a local script file, or a path in the repository with --repo)"}
	}
	if !slices.Contains(api.TaskTypes, o.taskType) {
		return &UsageError{Msg: fmt.Sprintf("submit: invalid --task-type %q (use %s)", o.taskType, strings.Join(api.TaskTypes, ", "))}
	}
	params, err := parseArgItems(o.args)
	if err != nil {
		return err
	}
	if o.name == "" {
		o.name = filepath.Base(filepath.FromSlash(o.script))
	}
	ctx, stop := signalContext()
	defer stop()

	script, what, err := scriptSection(ctx, &o, stderr)
	if err != nil {
		return err
	}
	req := map[string]any{"name": o.name, "type": o.taskType, "script": script, "comment": submitComment()}
	if pip, err := pipRequirements(o.requirements, o.packages); err != nil {
		return err
	} else if pip != "" {
		script["requirements"] = map[string]any{"pip": pip}
	}
	if len(params) > 0 {
		req["hyperparams"] = map[string]any{"Args": params}
	}
	container := map[string]string{}
	if o.docker != "" {
		container["image"] = o.docker
	}
	if o.dockerArgs != "" {
		container["arguments"] = o.dockerArgs
	}
	if o.dockerSetup != "" {
		b, err := os.ReadFile(o.dockerSetup)
		if err != nil {
			return fmt.Errorf("reading --docker_bash_setup_script: %w", err)
		}
		container["setup_shell_script"] = string(b)
	}
	if len(container) > 0 {
		req["container"] = container
	}
	if len(o.tags) > 0 {
		req["tags"] = o.tags
	}

	c, err := connect(ctx, g, stderr)
	if err != nil {
		return err
	}
	// The queue first: a bad queue name creates nothing.
	queueID, queueName, err := resolveQueue(ctx, c, o.queue, o.createQueue)
	if err != nil {
		return err
	}
	if o.project != "" {
		id, err := ensureProject(ctx, c, o.project)
		if err != nil {
			return err
		}
		req["project"] = id
	}
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", req, &created, apiclient.Default); err != nil {
		return fmt.Errorf("creating the task: %w", err)
	}
	enq := map[string]any{"task": created.ID, "queue": queueID}
	if err := c.Call(ctx, "", "tasks.enqueue", enq, nil, apiclient.Default); err != nil {
		return fmt.Errorf("task %s was created but not queued: %w", created.ID, err)
	}
	fmt.Fprintln(stdout, created.ID)
	where := ""
	if o.project != "" {
		where = " in project " + strconv.Quote(o.project)
	}
	fmt.Fprintf(stderr, "Task %s %q%s (%s) queued in %q\n", created.ID, o.name, where, what, queueName)
	return nil
}

// parseArgItems turns --args NAME=VALUE items into the Args section.
func parseArgItems(items []string) (map[string]api.ParamItem, error) {
	params := map[string]api.ParamItem{}
	for _, it := range items {
		name, value, ok := strings.Cut(it, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, &UsageError{Msg: fmt.Sprintf("submit: invalid --args item %q (want NAME=VALUE)", it)}
		}
		params[name] = api.ParamItem{Section: "Args", Name: name, Value: value}
	}
	return params, nil
}

// pipRequirements is the requirements file's text followed by the packages.
func pipRequirements(file string, packages []string) (string, error) {
	var parts []string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading --requirements: %w", err)
		}
		if s := strings.TrimRight(string(b), "\n"); s != "" {
			parts = append(parts, s)
		}
	}
	for _, p := range packages {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return strings.Join(parts, "\n") + "\n", nil
}

// submitComment says where the task came from, as clearml-task does.
func submitComment() string {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("Auto-generated at %s UTC by %s@%s (clearml-agent submit)", time.Now().UTC().Format(time.DateTime), who, host)
}

// ensureProject returns the id of the named project, creating it if missing.
func ensureProject(ctx context.Context, c *apiclient.Client, name string) (string, error) {
	id, err := findProject(ctx, c, name)
	if err != nil || id != "" {
		return id, err
	}
	var resp api.IDResponse
	err = c.Call(ctx, "", "projects.create", map[string]any{"name": name, "description": "Created by clearml-agent submit"}, &resp, apiclient.Default)
	if api.ErrExpectedUniqueData.Is(err) {
		// Created meanwhile by someone else, or named in another spelling.
		if id, ferr := findProject(ctx, c, name); ferr == nil && id != "" {
			return id, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("creating project %q: %w", name, err)
	}
	return resp.ID, nil
}

// scriptSection builds the task's script section and a few words on what
// it holds, for the summary.
func scriptSection(ctx context.Context, o *submitOptions, warn io.Writer) (map[string]any, string, error) {
	s := map[string]any{"binary": o.binary, "repository": "", "branch": "", "version_num": "", "entry_point": "",
		"working_dir": ".", "diff": ""}
	if o.repo != "" {
		s["repository"], s["branch"], s["version_num"] = o.repo, o.branch, o.commit
		s["entry_point"] = filepath.ToSlash(o.script)
		if o.cwd != "" {
			s["working_dir"] = filepath.ToSlash(o.cwd)
		}
		return s, "repository " + o.repo, nil
	}
	abs, err := filepath.Abs(o.script)
	if err != nil {
		return nil, "", err
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("script file %s does not exist", o.script)
	case err != nil:
		return nil, "", fmt.Errorf("script file: %w", err)
	case st.IsDir():
		return nil, "", fmt.Errorf("script %s is a folder, not a file", o.script)
	}
	if o.noRepo {
		return literalScript(s, o, abs, warn)
	}
	info, err := gitinfo.Read(ctx, abs)
	switch {
	case errors.Is(err, gitinfo.ErrNotRepository):
		return literalScript(s, o, abs, warn)
	case errors.Is(err, gitinfo.ErrGitNotFound):
		if inCheckout(abs) {
			return nil, "", fmt.Errorf("%s is in a git checkout, but %w", o.script, err)
		}
		return literalScript(s, o, abs, warn)
	case err != nil:
		return nil, "", fmt.Errorf("reading the git checkout of %s: %w", o.script, err)
	case info.RemoteURL == "" || info.Commit == "":
		fmt.Fprintf(warn, "clearml-agent: warning: the git checkout at %s has no remote or no commit; storing the script itself in the task\n", info.Root)
		return literalScript(s, o, abs, warn)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, "", err
	}
	wd := filepath.Dir(real)
	if o.cwd != "" {
		if wd, err = checkoutFolder(info.Root, o.cwd); err != nil {
			return nil, "", err
		}
	}
	relWD, err := filepath.Rel(info.Root, wd)
	if err != nil || relWD == ".." || strings.HasPrefix(relWD, ".."+string(filepath.Separator)) {
		return nil, "", fmt.Errorf("working folder %s is outside the git checkout %s", wd, info.Root)
	}
	entry, err := filepath.Rel(wd, real)
	if err != nil {
		return nil, "", err
	}
	s["repository"], s["branch"], s["version_num"], s["diff"] = info.RemoteURL, info.Branch, info.Commit, info.Diff
	if o.branch != "" {
		s["branch"] = o.branch
	}
	if o.commit != "" {
		s["version_num"] = o.commit
	}
	s["entry_point"], s["working_dir"] = filepath.ToSlash(entry), filepath.ToSlash(relWD)
	what := fmt.Sprintf("git %s %s %.8s", info.RemoteURL, s["branch"], s["version_num"])
	if info.Diff != "" {
		what += " with uncommitted changes"
	}
	return s, what, nil
}

// checkoutFolder resolves --cwd: a folder relative to the checkout's root,
// else one relative to the current folder (or an absolute path).
func checkoutFolder(root, cwd string) (string, error) {
	candidates := []string{cwd}
	if !filepath.IsAbs(cwd) {
		candidates = []string{filepath.Join(root, cwd), cwd}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			abs, err := filepath.Abs(c)
			if err != nil {
				return "", err
			}
			return filepath.EvalSymlinks(abs)
		}
	}
	return "", fmt.Errorf("working folder --cwd %s not found (here or in the checkout %s)", cwd, root)
}

// literalScript stores the script's text in script.diff, with no
// repository: what the daemon runs today.
func literalScript(s map[string]any, o *submitOptions, abs string, warn io.Writer) (map[string]any, string, error) {
	if o.branch != "" || o.commit != "" {
		fmt.Fprintln(warn, "clearml-agent: warning: --branch and --commit are ignored: the script itself is stored in the task")
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, "", fmt.Errorf("reading the script: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil, "", fmt.Errorf("script file %s is empty", o.script)
	}
	s["diff"], s["entry_point"] = string(b), filepath.Base(abs)
	if o.cwd != "" {
		s["working_dir"] = filepath.ToSlash(o.cwd)
	}
	return s, "script " + filepath.Base(abs) + " stored in the task", nil
}

// inCheckout reports whether a folder above path holds a .git entry.
func inCheckout(path string) bool {
	for dir := filepath.Dir(path); ; {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}
