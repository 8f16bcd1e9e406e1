package readme_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/testbin"
)

// The systemd units in deploy/ start commands this binary accepts, with
// the settings the README promises.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("../../deploy/systemd/*.service")
	if err != nil || len(units) != 2 {
		t.Fatalf("units: %v %v", units, err)
	}
	for _, u := range units {
		keys := unitKeys(t, u)
		exec := strings.Fields(keys["ExecStart"])
		if len(exec) < 2 || exec[0] != "/usr/local/bin/clearml-agent" {
			t.Fatalf("%s: ExecStart %q", u, keys["ExecStart"])
		}
		switch exec[1] {
		case "daemon":
			d, err := args.ParseDaemon(exec[2:])
			if err != nil || !d.Foreground || d.Detached {
				t.Errorf("%s: daemon arguments %v: %v (want --foreground, not detached)", u, exec[2:], err)
			}
			if keys["KillMode"] != "process" || keys["ExecReload"] != "/bin/kill -HUP $MAINPID" {
				t.Errorf("%s: KillMode %q, ExecReload %q", u, keys["KillMode"], keys["ExecReload"])
			}
		case "server":
			code, out, errOut := testbin.Run(t, nil, 30*time.Second, append(exec[1:], "--help")...)
			if code != 0 {
				t.Errorf("%s: server arguments %v refused: %s%s", u, exec[2:], out, errOut)
			}
		default:
			t.Errorf("%s: unknown command %q", u, exec[1])
		}
		if keys["User"] == "" || keys["User"] == "root" {
			t.Errorf("%s: runs as %q, want a dedicated user", u, keys["User"])
		}
	}
}

// unitKeys reads a unit file's Key=Value lines (the last one wins).
func unitKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		keys[k] = v
	}
	return keys
}
