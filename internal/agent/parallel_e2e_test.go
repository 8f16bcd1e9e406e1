package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// shTask creates and enqueues a shell-script task in queue ("" = default).
func (e *env) shTask(name, queue, script string) string {
	e.t.Helper()
	ctx := context.Background()
	var created api.IDResponse
	if err := e.api.Call(ctx, "", "tasks.create", map[string]any{"name": name, "type": "service",
		"script": map[string]any{"binary": "/bin/sh", "entry_point": "task.sh", "diff": script}}, &created, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	body := map[string]any{"task": created.ID}
	if queue != "" {
		body["queue_name"] = queue
	}
	if err := e.api.Call(ctx, "", "tasks.enqueue", body, nil, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	return created.ID
}

func (e *env) createQueue(name string) {
	e.t.Helper()
	if err := e.api.Call(context.Background(), "", "queues.create", map[string]any{"name": name}, nil, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
}

// interval is one task's run as the task itself recorded it.
type interval struct {
	task, worker, visible string
	start, end            int64 // ns
	stopped               bool  // ended by a signal, at an unknown time
}

// intervalScript makes a task append "start/end <ns> <worker> <visible>"
// lines to file, sleeping secs in between. A task stopped by a signal
// writes "-" for its end: a date command started then would be stopped
// too, since a stop ends every process of the task.
func intervalScript(file string, secs float64) string {
	return fmt.Sprintf(`end() { echo "end $1 $CLEARML_TASK_ID $CLEARML_WORKER_ID ${NVIDIA_VISIBLE_DEVICES:-unset}" >> %[1]s; }
trap 'end -; exit 143' TERM
echo "start $(date +%%s%%N) $CLEARML_TASK_ID $CLEARML_WORKER_ID ${NVIDIA_VISIBLE_DEVICES:-unset}" >> %[1]s
echo "running as $CLEARML_WORKER_ID"
sleep %[2]g
end "$(date +%%s%%N)"
`, file, secs)
}

func readIntervals(t *testing.T, file string) map[string]*interval {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*interval{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("bad interval line %q", line)
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		iv := out[f[2]]
		if iv == nil {
			iv = &interval{task: f[2], worker: f[3], visible: f[4]}
			out[f[2]] = iv
		}
		switch {
		case f[0] == "start":
			iv.start = ns
		case f[1] == "-":
			iv.stopped = true
		default:
			iv.end = ns
		}
	}
	return out
}

// maxOverlap is the largest number of intervals running at one moment.
func maxOverlap(ivs map[string]*interval) int {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, iv := range ivs {
		if iv.end == 0 {
			iv.end = 1 << 62
		}
		evs = append(evs, ev{iv.start, 1}, ev{iv.end, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta
	})
	n, best := 0, 0
	for _, e := range evs {
		n += e.delta
		best = max(best, n)
	}
	return best
}

// Ten tasks in services mode with a cap of 4: never more than 4 at once,
// several at once, each as its own worker; one aborted, the others
// complete.
func TestServicesModeParallelWithCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(e.dir, "intervals")
	d := e.daemon("--queue", "default", "--services-mode", "4")
	var ids []string
	for i := range 10 {
		secs := 1.5
		if i == 3 {
			secs = 120 // aborted below
		}
		ids = append(ids, e.shTask(fmt.Sprintf("service %d", i), "", intervalScript(file, secs)))
	}
	waitLog(t, e, ids[3], "running as", 60*time.Second)
	// Task 3 is stopped once a later one runs beside it: two at once at
	// least, however slowly the daemon starts them.
	waitLog(t, e, ids[4], "running as", 120*time.Second)
	// Each running task is a worker of its own on the server.
	var resp struct{ Workers []struct{ ID string } }
	e.api.Call(context.Background(), "", "workers.get_all", nil, &resp, apiclient.Default)
	children := 0
	for _, w := range resp.Workers {
		if strings.Contains(w.ID, ":service:") {
			children++
		}
	}
	if children < 1 || children > 4 {
		t.Errorf("%d service workers registered, want 1 to 4: %v", children, resp.Workers)
	}
	stopAt := time.Now().UnixNano()
	if err := e.api.Call(context.Background(), "", "tasks.stop", map[string]any{"task": ids[3]}, nil, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		tk := e.waitStatus(id, 120*time.Second, "completed", "failed", "stopped")
		want := "completed"
		if i == 3 {
			want = "stopped"
		}
		if tk.Status != want {
			t.Errorf("task %d = %s %q, want %s\n%s", i, tk.Status, tk.StatusReason, want, d.Output())
		}
		if !strings.Contains(strings.Join(e.logLines(id), "\n"), "running as e2ehost:cpu:") ||
			!strings.Contains(strings.Join(e.logLines(id), "\n"), ":service:"+id) {
			t.Errorf("task %d did not run as its own service worker", i)
		}
	}
	ivs := readIntervals(t, file)
	if len(ivs) != 10 {
		t.Fatalf("%d tasks ran, want 10", len(ivs))
	}
	if iv := ivs[ids[3]]; iv.stopped {
		// It ran at least until the stop was asked for; counting it as
		// ending then can only make the overlap smaller.
		iv.end = stopAt
	}
	if n := maxOverlap(ivs); n > 4 || n < 2 {
		t.Fatalf("at most %d tasks ran at once, want 2 to 4 (cap 4)", n)
	}
	for _, iv := range ivs {
		if iv.visible != "none" {
			t.Errorf("services mode is CPU only; task saw NVIDIA_VISIBLE_DEVICES=%s", iv.visible)
		}
	}
}

// fakeNvidiaSMI puts an nvidia-smi on PATH that reports four GPUs (the
// real one's CSV): GPU 2 with little free memory, GPU 3 running a process
// the agent did not start.
func fakeNvidiaSMI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
case "$1" in
--query-gpu=index,uuid,name,memory.total,memory.free*) printf '0, GPU-0, Fake GPU, 81920, 81000\n1, GPU-1, Fake GPU, 81920, 81000\n2, GPU-2, Fake GPU, 81920, 300\n3, GPU-3, Fake GPU, 81920, 60000\n' ;;
--query-compute-apps=*) printf 'GPU-3, 1, someone-elses-training, 20000\n' ;;
--query-gpu=*) printf '0, GPU-0, 0, 30, 920, 81000\n1, GPU-1, 0, 30, 920, 81000\n2, GPU-2, 0, 30, 81620, 300\n3, GPU-3, 50, 60, 21920, 60000\n' ;;
*) exit 1 ;;
esac
`
	testbin.WriteScript(t, filepath.Join(dir, "nvidia-smi"), script)
	return dir
}

func gpuSet(visible string) []string {
	if visible == "" || visible == "unset" {
		return nil
	}
	return strings.Split(visible, ",")
}

// checkDisjoint fails when two tasks ran on one GPU at the same time, or
// a task's devices differ from what its worker id says.
func checkDisjoint(t *testing.T, ivs map[string]*interval) {
	t.Helper()
	for _, a := range ivs {
		if want := "e2ehost:gpu" + a.visible; a.worker != want {
			t.Errorf("task %s ran as %s with NVIDIA_VISIBLE_DEVICES=%s", a.task, a.worker, a.visible)
		}
		for _, b := range ivs {
			if a.task >= b.task || a.end <= b.start || b.end <= a.start {
				continue
			}
			for _, x := range gpuSet(a.visible) {
				for _, y := range gpuSet(b.visible) {
					if x == y {
						t.Errorf("GPU %s given to %s and %s at once", x, a.task, b.task)
					}
				}
			}
		}
	}
}

// Four GPUs shared by three queues: assignments disjoint, visible devices
// as the worker id says, the higher-priority queue served first, an
// opportunistic range taking every free GPU.
func TestDynamicGPUs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(e.dir, "intervals")
	for _, q := range []string{"dual", "single", "flex"} {
		e.createQueue(q)
	}
	dual := []string{e.shTask("dual 1", "dual", intervalScript(file, 2)), e.shTask("dual 2", "dual", intervalScript(file, 2))}
	single := []string{e.shTask("single 1", "single", intervalScript(file, 1)), e.shTask("single 2", "single", intervalScript(file, 1)),
		e.shTask("single 3", "single", intervalScript(file, 1))}
	env := append(e.daemonEnv(), "PATH="+fakeNvidiaSMI(t)+":"+os.Getenv("PATH"))
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5",
		"--dynamic-gpus", "--gpus", "0-3", "--queue", "dual=2", "single=1", "flex=1-4")
	for _, id := range append(append([]string{}, dual...), single...) {
		if tk := e.waitStatus(id, 120*time.Second, "completed", "failed", "stopped"); tk.Status != "completed" {
			t.Fatalf("task %s = %s %q\n%s", id, tk.Status, tk.StatusReason, d.Output())
		}
	}
	ivs := readIntervals(t, file)
	logIntervals(t, ivs)
	checkDisjoint(t, ivs)
	for _, id := range dual {
		if n := len(gpuSet(ivs[id].visible)); n != 2 {
			t.Errorf("dual task got %q", ivs[id].visible)
		}
	}
	for _, id := range single {
		if n := len(gpuSet(ivs[id].visible)); n != 1 {
			t.Errorf("single task got %q", ivs[id].visible)
		}
	}
	// Priority: both dual tasks started before any single one.
	for _, s := range single {
		for _, du := range dual {
			if ivs[s].start < ivs[du].start {
				t.Errorf("single task started before a dual one")
			}
		}
	}
	if n := maxOverlap(ivs); n < 2 {
		t.Errorf("GPU tasks never ran in parallel")
	}
	// Alone, the opportunistic range takes every GPU.
	flex := e.shTask("flex", "flex", intervalScript(file, 0.2))
	if tk := e.waitStatus(flex, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("flex = %s %q", tk.Status, tk.StatusReason)
	}
	if got := readIntervals(t, file)[flex].visible; got != "0,1,2,3" {
		t.Errorf("flex task alone got %q, want all four GPUs", got)
	}
	if t.Failed() {
		t.Log(d.Output())
	}
}

// The admission check keeps tasks off GPUs with too little free memory or
// a foreign process (as nvidia-smi reports them).
func TestDynamicGPUsAdmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(e.dir, "intervals")
	e.createQueue("one")
	var ids []string
	for i := range 4 {
		ids = append(ids, e.shTask(fmt.Sprintf("one %d", i), "one", intervalScript(file, 1)))
	}
	env := append(e.daemonEnv(), "PATH="+fakeNvidiaSMI(t)+":"+os.Getenv("PATH"),
		"CLEARML_AGENT__AGENT__GPU_ADMISSION__ENABLED=true", "CLEARML_AGENT__AGENT__GPU_ADMISSION__MIN_FREE_MEMORY_MB=1000")
	d := testbin.Start(t, env, "--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5",
		"--dynamic-gpus", "--gpus", "0-3", "--queue", "one=1")
	for _, id := range ids {
		if tk := e.waitStatus(id, 120*time.Second, "completed", "failed", "stopped"); tk.Status != "completed" {
			t.Fatalf("task %s = %s %q\n%s", id, tk.Status, tk.StatusReason, d.Output())
		}
	}
	ivs := readIntervals(t, file)
	checkDisjoint(t, ivs)
	for _, iv := range ivs {
		if iv.visible != "0" && iv.visible != "1" {
			t.Errorf("task ran on GPU %s, which the admission check refuses", iv.visible)
		}
	}
	if n := maxOverlap(ivs); n > 2 {
		t.Errorf("%d tasks at once on 2 admitted GPUs", n)
	}
}

// A daemon killed while a task holds GPUs 0,1 and started again does not
// give those GPUs to the next task.
func TestDynamicGPUsRestartKeepsAllocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	file := filepath.Join(e.dir, "intervals")
	e.createQueue("dual")
	args := []string{"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5",
		"--dynamic-gpus", "--gpus", "0-3", "--queue", "dual=2"}
	long := e.shTask("long", "dual", intervalScript(file, 30))
	first := testbin.Start(t, e.daemonEnv(), args...)
	waitLog(t, e, long, "running as", 60*time.Second)
	first.Signal(os.Kill)
	first.Wait(60 * time.Second)
	if pidAlive(first.Pid()) {
		t.Fatal("the daemon did not die of SIGKILL")
	}
	t.Cleanup(func() { killTaskProcesses(t, long) })
	second := testbin.Start(t, e.daemonEnv(), args...)
	next := e.shTask("next", "dual", intervalScript(file, 0.2))
	if tk := e.waitStatus(next, 60*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("next = %s %q\n%s", tk.Status, tk.StatusReason, second.Output())
	}
	ivs := readIntervals(t, file)
	if ivs[long].visible != "0,1" || ivs[next].visible != "2,3" {
		t.Fatalf("long task on %q, next on %q: GPUs given twice after the restart\n%s", ivs[long].visible, ivs[next].visible, second.Output())
	}
}

// killTaskProcesses kills what is left of a task whose daemon was killed:
// its shim (which would otherwise write the task's exit into the run
// folder while the test's temporary folder is being removed) and its
// processes, and waits until they are gone.
func killTaskProcesses(t *testing.T, task string) {
	left := func() []int { return append(shimsOf(task), processesOf(task)...) }
	for _, pid := range left() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	testwait.Until(t, 30*time.Second, func() bool {
		for _, pid := range left() {
			if pidAlive(pid) {
				return false
			}
		}
		return true
	}, "the task's shim and processes to end")
}

func logIntervals(t *testing.T, ivs map[string]*interval) {
	var list []*interval
	var t0 int64
	for _, iv := range ivs {
		list = append(list, iv)
		if t0 == 0 || iv.start < t0 {
			t0 = iv.start
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].start < list[j].start })
	for _, iv := range list {
		t.Logf("%s on %-9s %6.2fs to %6.2fs as %s", iv.task[:8], iv.visible, float64(iv.start-t0)/1e9, float64(iv.end-t0)/1e9, iv.worker)
	}
}
