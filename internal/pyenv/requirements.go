package pyenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
)

var (
	userinfoRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@`) })
	vcsRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)(^|[\s@])(git|hg|svn|bzr)\+[a-z]+://`) })
	pinnedRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`@[0-9a-fA-F]{40}([#\s]|$)`) })
)

// reqFileOptions are the options pip accepts at the start of a requirements
// file line, mapped to their long names.
var reqFileOptions = map[string]string{
	"-i": "--index-url", "--index-url": "--index-url",
	"--extra-index-url": "--extra-index-url",
	"--no-index":        "--no-index",
	"-f":                "--find-links", "--find-links": "--find-links",
	"--no-binary":      "--no-binary",
	"--only-binary":    "--only-binary",
	"--prefer-binary":  "--prefer-binary",
	"--require-hashes": "--require-hashes",
	"--pre":            "--pre",
	"--trusted-host":   "--trusted-host",
	"--use-feature":    "--use-feature",
	"-r":               "--requirement", "--requirement": "--requirement",
	"-c": "--constraint", "--constraint": "--constraint",
	"-e": "--editable", "--editable": "--editable",
}

// resolutionEnv are the PIP_* variables that change what pip installs; they
// are part of the cache key.
var resolutionEnv = []string{"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
	"PIP_PRE", "PIP_CONSTRAINT", "PIP_ONLY_BINARY", "PIP_NO_BINARY", "PIP_PREFER_BINARY"}

// optionName returns the option a line starts with ("--index-url" for
// "--index-url=http://x", "-i" for "-ihttp://x").
func optionName(line string) string {
	if strings.HasPrefix(line, "--") {
		if i := strings.IndexAny(line, "= "); i > 0 {
			return line[:i]
		}
		return line
	}
	if len(line) >= 2 {
		return line[:2]
	}
	return line
}

// classifyRequirements rejects option lines pip does not allow in a
// requirements file and reports why the requirements cannot be cached ("" if
// they can): they name content the cache key does not cover.
func classifyRequirements(lines []string) (mutable string, err error) {
	for i, line := range lines {
		why := ""
		if strings.HasPrefix(line, "-") {
			name := optionName(line)
			opt, ok := reqFileOptions[name]
			if !ok {
				allowed := make([]string, 0, len(reqFileOptions))
				for k := range reqFileOptions {
					allowed = append(allowed, k)
				}
				sort.Strings(allowed)
				return "", fmt.Errorf("pyenv: requirements line %d %q: option %s is not allowed in a requirements file (allowed: %s)",
					i+1, line, name, strings.Join(allowed, " "))
			}
			switch opt {
			case "--requirement", "--constraint":
				why = "it includes another file"
			case "--editable":
				why = "it has an editable install"
			}
		} else {
			spec := line
			if j := strings.Index(spec, " --"); j >= 0 { // per-requirement options (--hash=...)
				spec = spec[:j]
			}
			switch {
			case vcsRE().MatchString(spec) && !pinnedRE().MatchString(spec):
				why = "a VCS requirement is not pinned to a commit"
			case strings.Contains(strings.ToLower(spec), "file:"):
				why = "it names a local file"
			case !strings.Contains(spec, "://") && looksLikePath(spec):
				why = "it names a local path"
			}
		}
		if why != "" && mutable == "" {
			mutable = fmt.Sprintf("line %d %q: %s", i+1, line, why)
		}
	}
	return mutable, nil
}

func looksLikePath(spec string) bool {
	if i := strings.IndexByte(spec, ';'); i >= 0 {
		spec = spec[:i]
	}
	return strings.HasPrefix(spec, ".") || strings.HasPrefix(spec, "~") || strings.ContainsAny(spec, `/\`)
}

// stripUserinfo drops "user:pass@" from URLs.
func stripUserinfo(s string) string { return userinfoRE().ReplaceAllString(s, "$1") }

// redact hides "user:pass@" in URLs for logging.
func redact(s string) string { return userinfoRE().ReplaceAllString(s, "${1}***@") }

// cacheKey hashes everything that decides the content of a venv. The
// format names the cache's layout: format 2 began when containers stopped
// seeing the cache (entries of format 1 may hold what a task's container
// wrote, and are never used; they age out with the cache's eviction).
func cacheKey(in *interpreter, lines, pipArgs, env []string, cuda string, systemSite bool) string {
	h := sha256.New()
	field := func(h hash.Hash, name, v string) { fmt.Fprintf(h, "%s=%q\n", name, v) }
	field(h, "format", "goclearml-pyenv/2")
	field(h, "platform", platformID())
	field(h, "python", in.Full)
	field(h, "base_prefix", in.BasePrefix)
	field(h, "pip", in.Pip)
	field(h, "system_site_packages", fmt.Sprint(systemSite))
	field(h, "cuda", cuda)
	for _, a := range pipArgs {
		field(h, "pip_arg", stripUserinfo(a))
	}
	for _, name := range resolutionEnv {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, name+"="); ok {
				field(h, name, stripUserinfo(v))
			}
		}
	}
	for _, l := range lines {
		field(h, "req", stripUserinfo(l))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// bareKey is the cache key of a venv with nothing installed, made without
// pip: only the interpreter, the platform and the system_site_packages flag
// decide its content (pip arguments, PIP_* variables and the CUDA version
// do not, as nothing is installed).
func bareKey(in *interpreter, systemSite bool) string {
	h := sha256.New()
	field := func(name, v string) { fmt.Fprintf(h, "%s=%q\n", name, v) }
	field("format", "goclearml-pyenv/2")
	field("venv", "without-pip")
	field("platform", platformID())
	field("python", in.Full)
	field("base_prefix", in.BasePrefix)
	field("system_site_packages", fmt.Sprint(systemSite))
	return hex.EncodeToString(h.Sum(nil))
}

// checkScript reads requirement lines on stdin and prints one line per
// requirement the interpreter does not satisfy ("MISSING ..."), or cannot
// check ("SKIP ...").
const checkScript = `import sys, re
try:
    from importlib import metadata
except ImportError:
    metadata = None
Req = None
for mod in ("packaging.requirements", "pip._vendor.packaging.requirements"):
    try:
        Req = __import__(mod, fromlist=["Requirement"]).Requirement
        break
    except Exception:
        pass
for line in sys.stdin.read().splitlines():
    line = line.strip()
    if not line:
        continue
    if line.startswith("-"):
        print("SKIP %s (option line)" % line)
        continue
    spec = line.split(" --", 1)[0]
    req = None
    if Req is not None:
        try:
            req = Req(spec)
        except Exception as e:
            print("MISSING %s (invalid requirement: %s)" % (line, e))
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = req.name
    else:
        name = re.split(r"[\s<>=!~;\[@(]", spec, 1)[0]
    if metadata is None:
        print("SKIP %s (cannot read installed packages)" % line)
        continue
    try:
        have = metadata.version(name)
    except Exception:
        print("MISSING %s (not installed)" % line)
        continue
    if req is not None and req.specifier and not req.specifier.contains(have, prereleases=True):
        print("MISSING %s (installed: %s)" % (line, have))
`

// checkInstalled fails unless the interpreter already satisfies lines.
func (p *prep) checkInstalled(ctx context.Context, in *interpreter, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, in.Path, "-c", checkScript)
	cmd.Env = p.env
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pyenv: standalone mode: checking installed packages with %s: %v", in.Path, err)
	}
	var missing []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if s, ok := strings.CutPrefix(l, "SKIP "); ok {
			p.logf("standalone mode: not checked: %s", s)
		} else if s, ok := strings.CutPrefix(l, "MISSING "); ok {
			missing = append(missing, "  "+s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pyenv: standalone mode installs nothing, and %s does not satisfy the task requirements:\n%s",
			in.Path, strings.Join(missing, "\n"))
	}
	return nil
}

// platformID identifies the operating system the environments are built
// on (/etc/os-release): a cache shared by the host and its containers
// (the venvs cache is mounted into them) never hands an environment built
// against one system's libraries to another with the same Python.
var platformID = sync.OnceValue(func() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS + "/" + runtime.GOARCH
	}
	sum := sha256.Sum256(data)
	return runtime.GOOS + "/" + runtime.GOARCH + "/" + hex.EncodeToString(sum[:8])
})
