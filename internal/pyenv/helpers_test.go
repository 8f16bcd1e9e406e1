package pyenv

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/testwait"
)

// testSeeds is shared by all tests so that the pip seed venv (ensurepip,
// seconds) is made once per test binary rather than once per cache dir.
var testSeeds string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pyenv-seeds-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testSeeds = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wheel describes a pure-python test package: module <name> with VALUE and
// show(); deps are imported and folded into VALUE.
type wheel struct {
	name, version string
	deps          []string // module names
	requires      []string // Requires-Dist lines
}

// writeWheel builds <name>-<ver>-py3-none-any.whl in dir and returns its path.
func writeWheel(t testing.TB, dir string, w wheel) string {
	t.Helper()
	var init strings.Builder
	for _, d := range w.deps {
		fmt.Fprintf(&init, "import %s\n", d)
	}
	fmt.Fprintf(&init, "VALUE = %q", w.name+"-"+w.version)
	for _, d := range w.deps {
		fmt.Fprintf(&init, " + \"+\" + %s.VALUE", d)
	}
	init.WriteString("\n\ndef show():\n    print(VALUE)\n")
	distInfo := fmt.Sprintf("%s-%s.dist-info", w.name, w.version)
	var md strings.Builder
	fmt.Fprintf(&md, "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: test package\n", w.name, w.version)
	for _, r := range w.requires {
		fmt.Fprintf(&md, "Requires-Dist: %s\n", r)
	}
	files := [][2]string{
		{w.name + "/__init__.py", init.String()},
		{distInfo + "/METADATA", md.String()},
		{distInfo + "/WHEEL", "Wheel-Version: 1.0\nGenerator: goclearml-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	files = append(files, [2]string{distInfo + "/RECORD", record.String()})

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		fw, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(f[1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", w.name, w.version))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testWheels are the fixture packages; beta depends on alpha.
var testWheels = []wheel{
	{name: "alpha", version: "1.0"},
	{name: "alpha", version: "2.0"},
	{name: "beta", version: "1.0", deps: []string{"alpha"}, requires: []string{"alpha>=1.0"}},
	{name: "gamma", version: "1.0"},
	{name: "delta", version: "1.0"},
	{name: "epsilon", version: "1.0"},
}

const fiveReqs = "alpha==1.0\nbeta==1.0\ngamma\ndelta  # the delta package\nepsilon\n"

// syncBuf is a log writer shared by concurrent Prepare calls.
type syncBuf struct{ testwait.Output }

// pipRuns counts pip install invocations in the log.
func (s *syncBuf) pipRuns() int { return strings.Count(s.String(), "environment: pip install ") }

type fixture struct {
	links, cache, work string
	log                *syncBuf
}

// needVenv skips the test when python3 cannot make virtual environments.
func needVenv(t testing.TB) {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import venv, ensurepip").CombinedOutput()
	if err != nil {
		t.Skipf("python3 -m venv is unavailable: %v %s", err, out)
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	needVenv(t)
	root := t.TempDir()
	f := &fixture{links: filepath.Join(root, "wheels"), cache: filepath.Join(root, "cache"),
		work: filepath.Join(root, "work"), log: &syncBuf{}}
	os.MkdirAll(f.links, 0o755)
	for _, w := range testWheels {
		writeWheel(t, f.links, w)
	}
	return f
}

func (f *fixture) opts() Options {
	return Options{
		CacheDir: f.cache, WorkDir: f.work, MaxEntries: 10,
		PipArgs: []string{"--no-index", "--find-links", f.links},
		Log:     f.log,
		Env:     testEnv(),
		seedDir: testSeeds,
	}
}

// entries lists the cache entry folders (not the dot folders).
func (f *fixture) entries() []string {
	des, _ := os.ReadDir(f.cache)
	var out []string
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	sort.Strings(out)
	return out
}

func prepare(t testing.TB, o Options, r Request) *Env {
	t.Helper()
	e, err := Prepare(context.Background(), o, r)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return e
}

// runPy runs code with the env's interpreter and returns its output.
func runPy(t testing.TB, e *Env, code string) string {
	t.Helper()
	out, err := exec.Command(e.Python, "-c", code).CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", e.Python, code, err, out)
	}
	return strings.TrimSpace(string(out))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// testEnv is this process's environment without the host's pip settings
// (PIP_FIND_LINKS and the like) and without pip config files.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIP_") {
			env = append(env, kv)
		}
	}
	return append(env, "PIP_CONFIG_FILE="+os.DevNull, "PIP_NO_CACHE_DIR=1")
}
