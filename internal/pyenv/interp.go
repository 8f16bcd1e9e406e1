package pyenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"
)

// interpreter is what probing a Python executable tells us.
type interpreter struct {
	Path       string // sys.executable (the real binary, not a pyenv shim)
	Version    string // "3.11.7"
	BasePrefix string // sys.base_prefix: identifies the installation
	Full       string // sys.version, build date and compiler included
	Pip        string // pip version ensurepip installs into a venv; "" without venv/ensurepip
	Venv       bool   // the venv module is there: --without-pip venvs can be made even without ensurepip
}

// probeScript prints one field a line, then "end" (so that empty last
// fields survive). It runs with -E -s -S: no PYTHON* variables, no site, so
// it is quick and sees only the interpreter itself.
const probeScript = `import sys
try:
    import venv
    has_venv = "venv"
except Exception:
    has_venv = ""
try:
    import ensurepip
    pip = ensurepip.version() if has_venv else ""
except Exception:
    pip = ""
print("%d.%d.%d" % tuple(sys.version_info[:3]))
print(sys.executable)
print(getattr(sys, "base_prefix", sys.prefix))
print(sys.version.replace("\n", " "))
print(pip)
print(has_venv)
print("end")
`

var (
	versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d+(\.\d+){0,2}$`) })
	binaryRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^python(\d+(?:\.\d+){0,2})?$`) })
)

// FindInterpreter resolves a task's script.binary to an interpreter path and
// its version ("3.11.7"). "python3.10" looks for python3.10, then python3,
// then python, and accepts the first whose version matches; when the
// requested version is not installed, defaultPython (agent.default_python)
// or else the first Python found is used and a warning is logged (upstream
// behaviour). An empty binary means defaultPython, then python3. A path is
// used as is. Any other name not starting with "python" is an error.
func FindInterpreter(binary, defaultPython string) (path, version string, err error) {
	in, err := findInterpreter(context.Background(), binary, defaultPython, pythonEnv(nil), func(msg string) {
		slog.Warn(msg)
	})
	if err != nil {
		return "", "", err
	}
	return in.Path, in.Version, nil
}

func isPath(s string) bool {
	return strings.ContainsRune(s, '/') || strings.ContainsRune(s, filepath.Separator)
}

// requestedVersion parses "python3.10" into "3.10" ("" for "python").
func requestedVersion(binary string) (string, error) {
	m := binaryRE().FindStringSubmatch(filepath.Base(binary))
	if m == nil {
		return "", fmt.Errorf("pyenv: binary %q is not a python interpreter (expected python, python3 or python3.X)", binary)
	}
	return m[1], nil
}

// candidates lists the names to try for a version: python3.10.4,
// python3.10, python3, python.
func candidates(want string) []string {
	var out []string
	for v := want; v != ""; {
		out = append(out, "python"+v)
		i := strings.LastIndexByte(v, '.')
		if i < 0 {
			break
		}
		v = v[:i]
	}
	if want == "" {
		out = append(out, "python3")
	}
	return append(out, "python")
}

func versionMatches(have, want string) bool {
	return want == "" || have == want || strings.HasPrefix(have, want+".")
}

func findInterpreter(ctx context.Context, binary, def string, env []string, warn func(string)) (*interpreter, error) {
	if binary == "" {
		binary, def = def, ""
	}
	if binary == "" {
		binary = "python3"
	}
	var tried []string
	try := func(name string) *interpreter {
		path := name
		if !isPath(name) {
			lp, err := exec.LookPath(name)
			if err != nil {
				tried = append(tried, name+" (not in PATH)")
				return nil
			}
			path = lp
		}
		in, err := cachedProbe(ctx, path, env)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
			return nil
		}
		return in
	}
	if isPath(binary) {
		if in := try(binary); in != nil {
			return in, nil
		}
		return nil, fmt.Errorf("pyenv: python interpreter %s", strings.Join(tried, ", "))
	}
	want, err := requestedVersion(binary)
	if err != nil {
		return nil, err
	}
	var first *interpreter
	for _, name := range candidates(want) {
		in := try(name)
		if in == nil {
			continue
		}
		if versionMatches(in.Version, want) {
			return in, nil
		}
		if first == nil {
			first = in
		}
	}
	if def != "" {
		if in := try(def); in != nil {
			first = in
		}
	}
	if first == nil {
		return nil, fmt.Errorf("pyenv: python executable with version %q (key 'agent.default_python') not found in path, tried: %s",
			want, strings.Join(tried, ", "))
	}
	warn(fmt.Sprintf("Python executable with version '%s' requested by the Task, not found in path, using '%s' (version %s)",
		want, first.Path, first.Version))
	return first, nil
}

// probe runs the interpreter once to learn its version and installation.
func probe(ctx context.Context, path string, env []string) (*interpreter, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-E", "-s", "-S", "-c", probeScript)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			msg := strings.TrimSpace(string(ee.Stderr))
			if i := strings.IndexByte(msg, '\n'); i > 0 {
				msg = msg[:i]
			}
			return nil, fmt.Errorf("%v: %s", err, msg)
		}
		return nil, err
	}
	f := strings.Split(strings.TrimRight(string(out), "\r\n"), "\n")
	if len(f) != 7 || strings.TrimSpace(f[6]) != "end" || !versionRE().MatchString(strings.TrimSpace(f[0])) {
		return nil, fmt.Errorf("unexpected version probe output %q", out)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	in := &interpreter{Path: f[1], Version: f[0], BasePrefix: f[2], Full: f[3], Pip: f[4], Venv: f[5] == "venv"}
	if in.Path == "" {
		in.Path = path
	}
	return in, nil
}

func majorMinor(v string) string {
	if p := strings.SplitN(v, ".", 3); len(p) >= 2 {
		return p[0] + "." + p[1]
	}
	return v
}

// pythonEnv is the environment for python and pip: the given one (or the
// agent's own) without PYTHONPATH and PYTHONHOME, which would leak the
// agent's or the user's modules into the venv (upstream drops PYTHONPATH).
func pythonEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// venvPython is the interpreter inside a venv.
func venvPython(dir string) string {
	if runtime.GOOS == "windows" {
		return filepath.Join(dir, "Scripts", "python.exe")
	}
	return filepath.Join(dir, "bin", "python")
}

func venvBin(dir string) string {
	if runtime.GOOS == "windows" {
		return filepath.Join(dir, "Scripts")
	}
	return filepath.Join(dir, "bin")
}

// sitePackages finds a venv's site-packages folder.
func sitePackages(dir string) (string, error) {
	if runtime.GOOS == "windows" {
		return filepath.Join(dir, "Lib", "site-packages"), nil
	}
	m, err := filepath.Glob(filepath.Join(dir, "lib", "python*", "site-packages"))
	if err != nil || len(m) != 1 {
		return "", fmt.Errorf("pyenv: no single site-packages in %s (found %d)", dir, len(m))
	}
	return m[0], nil
}
