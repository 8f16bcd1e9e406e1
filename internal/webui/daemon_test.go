package webui_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// venvCache is the virtualenv cache the daemons of these tests share (the
// first task builds it, the others reuse it).
var venvCache = filepath.Join(os.TempDir(), "clearml-agent-webui-test-venvs")

// daemon runs `clearml-agent daemon` against the server, in folders of
// the test's own.
func (s *uiServer) daemon(args ...string) *testbin.Process {
	s.t.Helper()
	dir := s.t.TempDir()
	for _, d := range []string{"tmp", "cache", "home"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	env := []string{"TMPDIR=" + filepath.Join(dir, "tmp"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HOME=" + filepath.Join(dir, "home"), "CLEARML_WORKER_NAME=uihost", "CLEARML_AGENT__AGENT__REATTACH_TIMEOUT_SEC=15",
		"CLEARML_AGENT__AGENT__VENVS_CACHE__PATH=" + venvCache}
	argv := append([]string{"--config-file", s.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5"}, args...)
	return testbin.Start(s.t, env, argv...)
}

// pythonTask creates a task that runs code with python3.
func (s *uiServer) pythonTask(name, code string) string {
	s.t.Helper()
	return s.task(name, map[string]any{"script": map[string]any{"binary": "python3", "entry_point": "task.py", "diff": code}})
}

// status reads a task's status.
func (s *uiServer) status(id string) string {
	s.t.Helper()
	return s.api(s.admin(), "tasks.get_by_id", map[string]any{"task": id})["task"].(map[string]any)["status"].(string)
}

// waitStatus polls the API until the task has one of the statuses.
func (s *uiServer) waitStatus(id string, d time.Duration, want ...string) string {
	s.t.Helper()
	var st string
	if !testwait.For(d, func() bool { st = s.status(id); return slices.Contains(want, st) }) {
		s.t.Fatalf("task %s is %s, want %v", id, st, want)
	}
	return st
}

// TestConsoleLiveAndAbort: a task run by the real daemon prints lines; the
// console page shows new ones as they come, without a reload; the Abort
// button then ends the task "stopped", and the page shows it.
func TestConsoleLiveAndAbort(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs Linux /proc (the daemon)")
	}
	srv := startServer(t)
	d := srv.daemon("--queue", "default")
	id := srv.pythonTask("ticker", "import time\nprint('first line', flush=True)\nfor i in range(3000):\n"+
		"    print('tick', i, flush=True)\n    time.sleep(0.1)\n")
	srv.api(srv.admin(), "tasks.enqueue", map[string]any{"task": id})
	srv.waitStatus(id, 2*time.Minute, "in_progress")
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	do(t, ctx, chromedp.Navigate(srv.URL+"/tasks/"+id+"/console"), chromedp.WaitVisible(chromedp.ID("log")))
	lastTick := func() int {
		txt := js[string](t, ctx, `[...document.querySelectorAll("#log .ln span")].map(s => s.textContent).filter(s => s.startsWith("tick ")).pop() || "tick -1"`)
		n, _ := strconv.Atoi(strings.TrimPrefix(txt, "tick "))
		return n
	}
	first := lastTick()
	// Lines printed after the page loaded appear in it.
	waitJS(t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#log .ln span")].some(s => /^tick (\d+)$/.test(s.textContent) && +s.textContent.slice(5) >= %d)`, first+10),
		2*time.Minute, "ten new lines in the console")
	if !strings.Contains(js[string](t, ctx, `document.getElementById("log").innerText`), "first line") {
		t.Errorf("the console lacks the task's first line")
	}
	screenshot(t, ctx, "console")
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("abort-button")), chromedp.Click(chromedp.ID("abort-button")))
	waitJS(t, ctx, `document.getElementById("task-status").textContent === "stopped"`, 2*time.Minute, "the task page to show the task stopped")
	if st := srv.status(id); st != "stopped" {
		t.Fatalf("after Abort the task is %s\n%s", st, d.Output())
	}
}

// TestQueueReorder: on the queues page, Top and Bottom reorder the waiting
// tasks, and the real daemon then runs them in the new order; Move and
// Remove take a task to another queue and out of its queue.
func TestQueueReorder(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs Linux /proc (the daemon)")
	}
	srv := startServer(t)
	adm := srv.admin()
	q := srv.api(adm, "queues.create", map[string]any{"name": "reorder"})["id"].(string)
	other := srv.api(adm, "queues.create", map[string]any{"name": "zz-other"})["id"].(string)
	order := filepath.Join(t.TempDir(), "order")
	ids := map[string]string{}
	for _, name := range []string{"a-first", "b-second", "c-third", "d-moved", "e-removed"} {
		ids[name] = srv.pythonTask(name, fmt.Sprintf("open(%q, 'a').write(%q + ' ')\n", order, name))
		srv.api(adm, "tasks.enqueue", map[string]any{"task": ids[name], "queue": q})
	}
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, srv.AccessKey, srv.SecretKey)
	do(t, ctx, chromedp.Navigate(srv.URL+"/queues"), chromedp.WaitVisible(chromedp.ID("q-"+q)))
	entries := func() string {
		return js[string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#q-%s li[data-task] > a")].map(a => a.textContent).join(" ")`, q))
	}
	click := func(action, name, want string) {
		t.Helper()
		do(t, ctx, clickJS(fmt.Sprintf(`#q-%s button[data-queue-action=%s][data-task="%s"]`, q, action, ids[name])))
		waitJS(t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#q-%s li[data-task] > a")].map(a => a.textContent).join(" ") === %q`, q, want),
			30*time.Second, fmt.Sprintf("%s %s: the queue %q (it shows %q)", action, name, want, entries()))
	}
	click("top", "c-third", "c-third a-first b-second d-moved e-removed")
	click("bottom", "a-first", "c-third b-second d-moved e-removed a-first")
	click("up", "a-first", "c-third b-second d-moved a-first e-removed")
	click("down", "c-third", "b-second c-third d-moved a-first e-removed")
	do(t, ctx, chromedp.SetValue(chromedp.ID("mv-"+q+"-"+ids["d-moved"]), other))
	click("move", "d-moved", "b-second c-third a-first e-removed")
	click("remove", "e-removed", "b-second c-third a-first")
	screenshot(t, ctx, "queues")
	if st := srv.status(ids["e-removed"]); st != "created" {
		t.Errorf("the removed task is %s, want created", st)
	}
	moved := srv.api(adm, "queues.get_by_id", map[string]any{"queue": other})["queue"].(map[string]any)["entries"].([]any)
	if len(moved) != 1 || moved[0].(map[string]any)["task"] != ids["d-moved"] {
		t.Errorf("the other queue holds %v, want d-moved", moved)
	}
	d := srv.daemon("--queue", "reorder")
	for _, name := range []string{"a-first", "b-second", "c-third"} {
		if st := srv.waitStatus(ids[name], 3*time.Minute, "completed", "failed"); st != "completed" {
			t.Fatalf("%s ended %s\n%s", name, st, d.Output())
		}
	}
	got, _ := os.ReadFile(order)
	if strings.TrimSpace(string(got)) != "b-second c-third a-first" {
		t.Fatalf("the daemon ran %q, want the new order \"b-second c-third a-first\"", got)
	}
}

// TestGuestCannotAct: a guest sees the pages without any action, and an
// action posted from its page (with its valid CSRF token) is refused with
// the API's message; nothing changes.
func TestGuestCannotAct(t *testing.T) {
	srv := startServer(t)
	id := srv.task("guarded", nil)
	srv.api(srv.admin(), "tasks.enqueue", map[string]any{"task": id})
	key, secret := srv.user("visitor", "guest")
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL, key, secret)
	for _, page := range []string{"/tasks", "/tasks/" + id, "/queues"} {
		do(t, ctx, chromedp.Navigate(srv.URL+page), chromedp.WaitVisible(chromedp.ID("main")))
		n := js[float64](t, ctx, `document.querySelectorAll("[data-bulk], [data-task-action], [data-queue-action], .param-edit").length`)
		if n != 0 {
			t.Errorf("%s shows a guest %v action controls", page, n)
		}
	}
	if !strings.Contains(js[string](t, ctx, `document.querySelector(".who").innerText`), "read only") {
		t.Errorf("the header does not say the guest is read-only")
	}
	out := js[map[string]any](t, ctx, fmt.Sprintf(`(async () => {
		const res = await fetch("/tasks/actions", {method: "POST", headers: {"Content-Type": "application/json",
			"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
			body: JSON.stringify({action: "abort", ids: [%q]})});
		return {status: res.status, body: await res.json()};
	})()`, id))
	body, _ := out["body"].(map[string]any)
	failed, _ := body["failed"].([]any)
	if out["status"] != 403.0 || len(failed) != 1 || !regexp.MustCompile(`read-only`).MatchString(fmt.Sprint(failed[0])) {
		t.Fatalf("a guest's abort: %v", out)
	}
	if st := srv.status(id); st != "queued" {
		t.Fatalf("the task is %s after the guest's abort, want queued", st)
	}
}
