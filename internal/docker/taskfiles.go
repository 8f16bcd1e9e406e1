package docker

import (
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/goclearml/agent/internal/executor"
)

// secretPassEnv are the daemon-side variables a container receives by
// name when they are set: the task's owner token and the git credentials
// (for the clone, and for the task's own git use).
var secretPassEnv = []string{"CLEARML_AUTH_TOKEN", "CLEARML_AGENT_GIT_USER", "CLEARML_AGENT_GIT_PASS"}

// runSpec writes the task's files (configuration, set-up script, ssh
// copy) and assembles its container. cleanup removes the files.
// mirror, when set, is the host's git mirror of the task's repository,
// mounted read-only.
func (l *Launcher) runSpec(taskID string, spec executor.Spec, c Choice, m Merged, mirror string) (RunSpec, func(), error) {
	s := l.s
	// Beside the run folder when there is one: the files stay while the
	// container runs, through a daemon restart, and go with the run.
	parent := s.WorkDir
	if spec.RunDir != "" {
		parent = filepath.Dir(spec.RunDir)
		os.MkdirAll(parent, 0o700)
	}
	dir, err := os.MkdirTemp(parent, ".clearml_agent_docker_"+taskID+"_")
	if err != nil {
		return RunSpec{}, nil, fmt.Errorf("creating the task's docker files: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	fail := func(err error) (RunSpec, func(), error) { cleanup(); return RunSpec{}, nil, err }

	conf, err := ContainerConfig(s.ConfigTree, s.Conf)
	if err != nil {
		return fail(err)
	}
	confPath := filepath.Join(dir, "clearml.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return fail(fmt.Errorf("writing the container's configuration: %w", err))
	}
	worker, _ := envValue(spec.Env, "CLEARML_WORKER_ID")
	r := RunSpec{Image: c.Image, Args: m.Args, GPUs: s.GPUs, HostNetwork: s.HostNetwork}
	r.GPUs.AgentSet = r.GPUs.AgentSet || m.AgentGPUs
	// The task's own devices (dynamic GPUs give each task its own).
	if v, ok := envValue(spec.Env, "NVIDIA_VISIBLE_DEVICES"); ok {
		r.GPUs.Visible = v
	}
	r.Labels = append([]string{LabelWorker + "=" + worker, LabelParentWorker + "=" + s.ParentWorker,
		LabelTask + "=" + taskID, LabelRun + "=" + spec.Marker}, s.Labels...)
	r.Env = []string{"CLEARML_WORKER_ID=" + worker, "CLEARML_DOCKER_IMAGE=" + c.Image, "CLEARML_TASK_ID=" + taskID,
		"CLEARML_CONFIG_FILE=" + ConfigPath, "CLEARML_AGENT_IN_CONTAINER=1"}
	for _, name := range []string{"CLEARML_WORKER_TAGS", "CLEARML_AGENT_SERVICE_TASK", "CLEARML_AGENT_DAEMON_REPORTS"} {
		if v, ok := envValue(spec.Env, name); ok && v != "" {
			r.Env = append(r.Env, name+"="+v)
		}
	}
	for _, name := range append(append([]string{}, secretPassEnv...), s.PassEnv...) {
		if v, ok := envValue(spec.Env, name); ok && v != "" {
			r.PassEnv = append(r.PassEnv, name)
		}
	}
	r.Mounts = []Mount{{Host: s.Self, Container: AgentBinary, ReadOnly: true}, {Host: confPath, Container: ConfigPath, ReadOnly: true}}
	if mirror != "" {
		r.Mounts = append(r.Mounts, Mount{Host: mirror, Container: path.Join(s.Mounts.VCSCache, filepath.Base(mirror)), ReadOnly: true})
	}
	if s.Caches.Shared {
		// Folders of the containers only: never used on the host.
		for _, cm := range []struct{ host, inside string }{
			{s.Caches.Pip, s.Mounts.PipCache}, {s.Caches.Apt, s.Mounts.AptCache},
			{s.Caches.Venvs, s.Mounts.VenvsCache}, {s.Caches.SDK, s.Mounts.SDKCache},
		} {
			if cm.host == "" {
				continue
			}
			if err := os.MkdirAll(cm.host, 0o700); err != nil {
				return fail(fmt.Errorf("creating cache folder %s: %w", cm.host, err))
			}
			r.Mounts = append(r.Mounts, Mount{Host: cm.host, Container: cm.inside})
		}
	}
	r.Mounts = append(r.Mounts, s.GitFiles...)
	init := s.Init
	init.TaskScript = c.SetupScript
	switch {
	case s.SSHAuthSock != "":
		r.Mounts = append(r.Mounts, Mount{Host: s.SSHAuthSock, Container: s.SSHAuthSock})
		r.Env = append(r.Env, "SSH_AUTH_SOCK="+s.SSHAuthSock)
	case s.SSHDir != "":
		copyDir := filepath.Join(dir, "ssh")
		if err := copyTree(s.SSHDir, copyDir); err != nil {
			l.s.Log.Warn("copying ~/.ssh for the container; not mounting it", "err", err)
			break
		}
		r.Mounts = append(r.Mounts, Mount{Host: copyDir, Container: s.Mounts.SSHROFolder, ReadOnly: true})
		init.SSHFrom, init.SSHTo = s.Mounts.SSHROFolder, s.Mounts.SSHFolder
	}
	inner := s.InnerArgv(taskID)
	r.Command = append([]string{"container-run"}, "--")
	if !s.Standalone {
		scriptPath := filepath.Join(dir, "init.sh")
		if err := os.WriteFile(scriptPath, []byte(InitScript(init)), 0o644); err != nil {
			return fail(fmt.Errorf("writing the container set-up script: %w", err))
		}
		r.Mounts = append(r.Mounts, Mount{Host: scriptPath, Container: InitScriptPath, ReadOnly: true})
		r.Command = []string{"container-run", "--init", InitScriptPath, "--"}
	}
	r.Command = append(r.Command, inner...)
	format := s.NameFormat
	if format == "" {
		format = "clearml-{task_id}-{rand_string:.6}"
	}
	name, err := ContainerName(format, map[string]string{"task_id": taskID, "worker_id": worker, "rand_string": randomString(16)})
	if err != nil {
		return fail(err)
	}
	r.Name = name
	return r, cleanup, nil
}

// copyTree copies a folder (the host's ~/.ssh) keeping file modes;
// symbolic links are followed.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := os.Stat(path)
		if err != nil {
			return nil // a dangling link
		}
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// checkStatic refuses a dynamically linked agent binary, which could not
// run inside arbitrary images.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("docker mode mounts this binary into the containers, but it cannot be read as a Linux executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("docker mode mounts this binary (%s) into the containers, so it must be statically linked: "+
				"build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
