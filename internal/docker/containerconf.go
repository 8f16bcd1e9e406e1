package docker

import (
	"encoding/json"
	"fmt"
	"strings"
)

// InternalMounts are the paths inside the container
// (agent.docker_internal_mounts.*).
type InternalMounts struct {
	SDKCache, AptCache, SSHFolder, SSHROFolder, PipCache, PoetryCache, VCSCache, VenvsCache, VenvBuild, PipDownload string
}

// DefaultInternalMounts are upstream's defaults.
func DefaultInternalMounts() InternalMounts {
	return InternalMounts{
		SDKCache: "/clearml_agent_cache", AptCache: "/var/cache/apt/archives", SSHFolder: "~/.ssh", SSHROFolder: "/.ssh",
		PipCache: "/root/.cache/pip", PoetryCache: "/root/.cache/pypoetry", VCSCache: "/root/.clearml/vcs-cache",
		VenvsCache: "/root/.clearml/venvs-cache", VenvBuild: "~/.clearml/venvs-builds", PipDownload: "/root/.clearml/pip-download-cache",
	}
}

// WithOverrides applies agent.docker_internal_mounts.* values.
func (m InternalMounts) WithOverrides(get func(key string) string) InternalMounts {
	for _, f := range []struct {
		dst *string
		key string
	}{
		{&m.SDKCache, "sdk_cache"}, {&m.AptCache, "apt_cache"}, {&m.SSHFolder, "ssh_folder"}, {&m.SSHROFolder, "ssh_ro_folder"},
		{&m.PipCache, "pip_cache"}, {&m.PoetryCache, "poetry_cache"}, {&m.VCSCache, "vcs_cache"}, {&m.VenvsCache, "venvs_cache"},
		{&m.VenvBuild, "venv_build"}, {&m.PipDownload, "pip_download"},
	} {
		if v := strings.TrimSpace(get(f.key)); v != "" {
			*f.dst = v
		}
	}
	return m
}

// ConfOptions shape the container's configuration file.
type ConfOptions struct {
	Mounts InternalMounts
	// VCSCache: the host's mirror of the task's repository may be mounted
	// inside, read-only. VenvsCache: a venv cache is mounted (and used)
	// inside (agent.docker_cache_isolation: shared).
	VCSCache, VenvsCache bool
	// OwnerToken: the task runs with its owner's token (CLEARML_AUTH_TOKEN),
	// so the agent's own credentials stay out of the container.
	OwnerToken bool
	// SystemSitePackages is agent.package_manager.system_site_packages
	// inside (upstream: true unless CLEARML_AGENT_FORCE_SYSTEM_SITE_PACKAGES=0),
	// so packages of the image are visible to the task's environment.
	SystemSitePackages bool
}

// ContainerConfig is the agent's merged configuration as the container
// sees it (spec 3.9 "Container-flavoured config dump"): cache paths
// pointing at the mounts, the host's interpreter choices cleared, and
// secrets the container does not need removed. The git credentials reach
// the container as variables, not in this file.
func ContainerConfig(tree map[string]any, o ConfOptions) ([]byte, error) {
	tree = deepCopyMap(tree)
	delete(tree, "env")
	set := func(path string, v any) { setPath(tree, strings.Split(path, "."), v) }
	del := func(path string) { deletePath(tree, strings.Split(path, ".")) }
	set("sdk.storage.cache.default_base_dir", o.Mounts.SDKCache)
	set("agent.pip_download_cache.path", o.Mounts.PipDownload)
	set("agent.venvs_dir", o.Mounts.VenvBuild)
	if o.VCSCache {
		// The host's mirror of the task's repository, mounted read-only
		// when there is one (see Launcher.Launch).
		set("agent.vcs_cache.path", o.Mounts.VCSCache)
		set("agent.vcs_cache.read_only", true)
	} else {
		set("agent.vcs_cache.enabled", false)
	}
	if o.VenvsCache {
		set("agent.venvs_cache.path", o.Mounts.VenvsCache)
	} else {
		del("agent.venvs_cache.path")
	}
	for _, k := range []string{"default_python", "python_binary", "cuda_version", "cudnn_version"} {
		set("agent."+k, "")
	}
	set("agent.package_manager.conda_env_as_base_docker", false)
	set("agent.package_manager.system_site_packages", o.SystemSitePackages)
	del("agent.git_pass")
	del("agent.git_user")
	del("agent.metrics_address")
	if o.OwnerToken {
		del("api.credentials")
	}
	out, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing the container's configuration: %w", err)
	}
	return out, nil
}

func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func deletePath(m map[string]any, path []string) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, path[len(path)-1])
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopy(v)
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
