package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
)

// A task's folder is private to the daemon's user: inside the user's own
// cache folder, every folder the agent made 0700 and its own, created
// fresh for each run (what another user left where the folder goes is
// removed, never run), and a folder of another user in that place is
// refused with a message naming it and its owner. Before, the folder was
// $TMPDIR/.clearml_agent_task_<id>, which any local user could create
// first.
func TestTaskFolderIsPrivate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: plants files owned by another user")
	}
	t.Parallel()
	e := newEnv(t)
	const other = 4242
	cacheBase := filepath.Join(e.dir, "cache")
	code := "import os, json\nprint('cwd', os.getcwd(), flush=True)\n"
	// Planted where the next task's folder goes, by another user.
	ctx := context.Background()
	var created api.IDResponse
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": "private folder", "type": "training",
		"script": map[string]any{"binary": "python3", "entry_point": "task.py", "diff": code}}, &created, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	id := created.ID
	tasks := filepath.Join(cacheBase, "clearml-agent", "tasks")
	for _, planted := range []string{filepath.Join(tasks, id, "code"), filepath.Join(e.dir, "tmp", ".clearml_agent_task_"+id, "code")} {
		os.MkdirAll(planted, 0o777)
		os.WriteFile(filepath.Join(planted, "json.py"), []byte("print('PLANTED by another user', flush=True)\n"), 0o666)
		for p := planted; p != filepath.Dir(filepath.Dir(planted)); p = filepath.Dir(p) {
			os.Chown(p, other, other)
		}
		os.Chown(filepath.Join(planted, "json.py"), other, other)
	}
	os.Chmod(tasks, 0o700) // the agent's own folder, as it makes it
	d := e.daemon("--queue", "default")
	if err := e.api.Call(ctx, "", "tasks.enqueue", map[string]any{"task": id}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	tk := e.waitStatus(id, 60*time.Second, "completed", "failed", "stopped")
	log := strings.Join(e.logLines(id), "\n")
	if tk.Status != "completed" || strings.Contains(log, "PLANTED") {
		t.Fatalf("task = %s %q; another user's file ran or the task failed:\n%s\n%s", tk.Status, tk.StatusReason, log, d.Output())
	}
	var cwd string
	for _, l := range e.logLines(id) {
		if rest, ok := strings.CutPrefix(l, "cwd "); ok {
			cwd = strings.TrimSpace(rest)
		}
	}
	if !strings.HasPrefix(cwd, cacheBase+string(filepath.Separator)) {
		t.Fatalf("the task ran in %s, outside the daemon user's private folder %s", cwd, cacheBase)
	}
	for p := filepath.Dir(cwd); p != cacheBase; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			continue // the task's own folder is gone once it ended
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 0 || st.Mode().Perm() != 0o700 || !st.IsDir() {
			t.Errorf("%s: owner %d, mode %v; want the daemon's user, 0700", p, uid, st.Mode())
		}
	}

	// Another user's folder where the task folders go: refused, named.
	os.RemoveAll(tasks)
	os.MkdirAll(tasks, 0o777)
	os.Chown(tasks, other, other)
	os.Chmod(tasks, 0o777)
	next := e.task("squatted", "", code)
	tk = e.waitStatus(next, 60*time.Second, "completed", "failed", "stopped")
	if tk.Status != "failed" || !strings.Contains(tk.StatusReason, tasks) || !strings.Contains(tk.StatusReason, "4242") {
		t.Fatalf("task = %s %q, want failed naming %s and its owner", tk.Status, tk.StatusReason, tasks)
	}
}
