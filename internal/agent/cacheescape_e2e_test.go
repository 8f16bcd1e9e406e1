package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/testbin"
)

// Nothing a task's container writes is ever run or imported on the host.
// A container task's setup script writes git hooks into every mirror of
// the repository cache and a .pth file into every virtualenv of the venv
// cache it can reach; then a venv-mode task of the same repository runs
// on the host, whose fetch updates the mirror and whose Python starts from
// the cached venv. Before, the mirrors and the venvs were mounted
// read-write into every container, and both ran on the host, as root.
func TestContainerCannotPoisonHostCaches(t *testing.T) {
	t.Parallel()
	de := newDockerEnv(t)
	image := dockertest.Python(t)
	marker := filepath.Join(de.dir, "escaped")
	// The repository, and caches of this test's own.
	origin := filepath.Join(de.dir, "origin")
	os.MkdirAll(origin, 0o755)
	gitRun(t, origin, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(origin, "main.py"), []byte("print('clean run', flush=True)\n"), 0o644)
	gitRun(t, origin, "add", "main.py")
	gitRun(t, origin, "commit", "-q", "-m", "first")
	caches := []string{"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH=" + filepath.Join(de.dir, "venvs"),
		"CLEARML_AGENT__AGENT__VCS_CACHE__PATH=" + filepath.Join(de.dir, "vcs")}
	hostEnv := append(append(de.daemonEnv(), caches...), "CLEARML_WORKER_ID="+de.worker+"-host")
	host := testbin.Start(t, hostEnv, "--config-file", de.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5", "--queue", "default")
	ctx := context.Background()
	newTask := func(name, queue string, extra map[string]any) string {
		body := map[string]any{"name": name, "type": "training",
			"script": map[string]any{"binary": "python3", "repository": origin, "branch": "main", "entry_point": "main.py", "working_dir": "."}}
		for k, v := range extra {
			body[k] = v
		}
		var created api.IDResponse
		if err := de.api.Call(ctx, "", "tasks.create", body, &created, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		if err := de.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": queue}, nil, apiclient.Default); err != nil {
			t.Fatal(err)
		}
		return created.ID
	}
	runs := func(id string, d *testbin.Process) {
		t.Helper()
		tk := de.waitStatus(id, 240*time.Second, "completed", "failed", "stopped")
		if log := de.log(id); tk.Status != "completed" || !strings.Contains(log, "clean run") {
			t.Fatalf("task %s = %s %q\n%s\n%s", id, tk.Status, tk.StatusReason, log, d.Output())
		}
	}
	// 1. On the host: the mirror and the venv are cached.
	runs(newTask("host, first", "default", nil), host)

	// 2. In a container: the setup script attacks whatever it can reach.
	attack := `for m in /root/.clearml/vcs-cache/*.git /root/.clearml/vcs-cache/*/*.git; do
  [ -d "$m" ] || continue
  for h in reference-transaction post-checkout post-merge pre-auto-gc; do
    printf '#!/bin/sh\necho hook >> ` + marker + `\n' > "$m/hooks/$h" && chmod +x "$m/hooks/$h" && echo "wrote hook $m/hooks/$h"
  done
  printf '[gc]\n\tauto = 1\n' >> "$m/config" && echo "changed $m/config"
done
for sp in $(find /root/.clearml /root/.cache /clearml_agent_cache -type d -name site-packages 2>/dev/null); do
  echo 'import os; open("` + marker + `", "a").write("pth\n")' > "$sp/zz_escape.pth" && echo "wrote $sp/zz_escape.pth"
done
true`
	dd := de.daemon(caches, "", "--queue", "docker", "--create-queue", "--cpu-only", "--docker", image)
	boxed := newTask("container, attacker", "docker", map[string]any{"container": map[string]string{"image": image, "setup_shell_script": attack}})
	boxedTask := de.waitStatus(boxed, 240*time.Second, "completed", "failed", "stopped")
	t.Logf("the container's attempts:\n%s", grepLines(de.log(boxed), "wrote ", "changed "))

	// 3. The repository moves on (so that the host's fetch updates the
	// mirror's refs), and a task of it runs on the host again.
	os.WriteFile(filepath.Join(origin, "main.py"), []byte("print('clean run', 2, flush=True)\n"), 0o644)
	gitRun(t, origin, "commit", "-q", "-am", "second")
	runs(newTask("host, after the container", "default", nil), host)
	if got, err := os.ReadFile(marker); err == nil {
		t.Fatalf("code a container wrote ran on the host: %q", got)
	}
	// The container's checkout came from the read-only mirror, which the
	// host brought up to date before it started.
	if log := de.log(boxed); boxedTask.Status != "completed" || !strings.Contains(log, "clean run") {
		t.Errorf("container task = %s %q\n%s\n%s", boxedTask.Status, boxedTask.StatusReason, log, dd.Output())
	}
	de.noContainersLeft()
}

// grepLines returns the lines of text holding one of the words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
