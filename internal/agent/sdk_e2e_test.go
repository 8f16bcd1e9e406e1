package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/sdkreplay"
	"github.com/goclearml/agent/internal/testbin"
)

// The ClearML SDK's Pipelines, HyperParameterOptimizer and Datasets end to
// end: the SDK's requests (internal/sdkreplay, read from the SDK's source)
// sent by programs that run on this machine as a user would run them, and
// by tasks that our daemons execute.

// onBackends runs fn with a fresh server on SQLite and on PostgreSQL.
func onBackends(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var args []string
			if backend == "postgres" {
				args = []string{"--db", pgtest.NewDatabase(t)}
			}
			fn(t, newEnv(t, args...))
		})
	}
}

// sdkEnv points the SDK replay, in tests and in tasks, at the test server.
func (e *env) sdkEnv() []string {
	return sdkreplay.Env(e.srv.URL, e.srv.URL+"/files", e.srv.AccessKey, e.srv.SecretKey)
}

// sdkDaemon starts a daemon whose tasks reach the server as the SDK does.
func (e *env) sdkDaemon(args ...string) *testbin.Process {
	e.t.Helper()
	argv := append([]string{"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--polling-interval", "0.5"}, args...)
	return testbin.Start(e.t, append(e.daemonEnv(), e.sdkEnv()...), argv...)
}

// runLocal runs an SDK replay program here, as a user runs a script, and
// returns its "RESULT key value" lines.
func (e *env) runLocal(t *testing.T, name, program string) map[string]string {
	t.Helper()
	py := sdkreplay.Python(t)
	dir := filepath.Join(e.dir, "local", name)
	os.MkdirAll(dir, 0o700)
	script := filepath.Join(dir, name+".py")
	if err := os.WriteFile(script, []byte(sdkreplay.Script(program)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), e.sdkEnv()...), "TMPDIR="+dir, "CLEARML_TASK_ID=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("local SDK program %s failed: %v\n%s", name, err, out)
	}
	return results(string(out))
}

func results(out string) map[string]string {
	r := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			k, v, _ := strings.Cut(rest, " ")
			r[k] = v
		}
	}
	return r
}

// children lists the tasks whose parent is id.
func (e *env) children(id string) []*api.Task {
	e.t.Helper()
	var resp struct {
		Tasks []*api.Task `json:"tasks"`
	}
	err := e.api.Call(context.Background(), "", "tasks.get_all", map[string]any{"parent": []string{id}, "order_by": []string{"created"}},
		&resp, apiclient.Default)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Tasks
}

// The step tasks of the pipeline: the first writes numbers as an artifact,
// the second reads it through the URL the controller passes it.
const stepOne = `
s = Session()
me = Task.init(s, None, None)
n = int(me.get_parameters()["Args/n"])
open("numbers.txt", "w").write("\n".join(str(i) for i in range(1, n + 1)))
me.upload_artifact("result", "numbers.txt")
me.report_scalar("numbers", "sum", n * (n + 1) / 2, 0)
print("step one wrote", n, "numbers")
`

const stepTwo = `
s = Session()
me = Task.init(s, None, None)
params = me.get_parameters()
numbers = [int(x) for x in s.download(params["Args/data_url"]).decode().split()]
me.report_single_value("total", sum(numbers))
print("step two read %d numbers from %s, total %d" % (len(numbers), params["Args/source"], sum(numbers)))
`

// TestSDKPipelineControllerOnServicesQueue: a PipelineController started
// from this machine (start(queue="services")) runs in a --services-mode
// daemon; it clones its two steps and enqueues them on a second queue, where
// another daemon runs them; the second step gets the first one's artifact.
func TestSDKPipelineControllerOnServicesQueue(t *testing.T) {
	t.Parallel()
	onBackends(t, func(t *testing.T, e *env) {
		e.createQueue("services")
		e.createQueue("pipeline steps")
		controller := e.sdkDaemon("--queue", "services", "--services-mode", "2")
		steps := e.sdkDaemon("--queue", "pipeline steps")
		// The steps' base tasks, as Task.create registers them.
		base := e.runLocal(t, "register", fmt.Sprintf(`
s = Session()
for name, code, params in (("step one", %q, {"Args/n": "3"}), ("step two", %q, {"Args/data_url": "", "Args/source": ""})):
    t = Task.create(s, "pipe demo", name)
    t._edit(script={"binary": "python3", "entry_point": "step.py", "working_dir": ".", "diff": code})
    t.update_parameters(params)
    print("RESULT", name.replace(" ", "_"), t.id)
`, sdkreplay.Script(stepOne), sdkreplay.Script(stepTwo)))
		started := e.runLocal(t, "pipeline", `
s = Session()
pipe = PipelineController(s, "numbers pipeline", "pipe demo", version="1.2.0")
pipe.add_step("step_one", "pipe demo", "step one", {"Args/n": "5"}, execution_queue="pipeline steps")
pipe.add_step("step_two", "pipe demo", "step two", {"Args/data_url": "${step_one.artifacts.result.url}",
              "Args/source": "${step_one.id}"}, parents=["step_one"], execution_queue="pipeline steps")
print("RESULT controller", pipe.task.id)
pipe.start(queue="services")
`)
		id := started["controller"]
		done := e.waitStatus(id, 5*time.Minute, "completed", "failed", "stopped")
		if done.Status != "completed" {
			t.Fatalf("controller %s %q\n%s\ncontroller daemon:\n%s\nsteps daemon:\n%s", done.Status, done.StatusReason,
				strings.Join(e.logLines(id), "\n"), controller.Output(), steps.Output())
		}
		if !strings.Contains(done.LastWorker, ":service:"+id) || !containsTag(done.SystemTags, "pipeline") {
			t.Fatalf("controller ran as %q with system tags %v, want a services-mode worker and the pipeline tag", done.LastWorker, done.SystemTags)
		}
		kids := e.children(id)
		if len(kids) != 2 {
			t.Fatalf("controller has %d step tasks, want 2", len(kids))
		}
		one, two := kids[0], kids[1]
		for i, k := range kids {
			if k.Status != "completed" || !containsTag(k.Tags, "pipe: "+id) || k.Project != done.Project {
				t.Fatalf("step %d: status %s, tags %v, project %s (controller's %s)", i, k.Status, k.Tags, k.Project, done.Project)
			}
			if w := k.LastWorker; strings.Contains(w, ":service:") {
				t.Fatalf("step %d ran on the services daemon (%s)", i, w)
			}
		}
		if n := one.Hyperparams["Args"]["n"].Value; n != "5" || one.ID == base["step_one"] {
			t.Fatalf("step one: n=%s, id %s (base %s): want a clone with the override", n, one.ID, base["step_one"])
		}
		url := two.Hyperparams["Args"]["data_url"].Value
		if !strings.HasPrefix(url, e.srv.URL+"/files/") || two.Hyperparams["Args"]["source"].Value != one.ID {
			t.Fatalf("step two's parameters: %v", two.Hyperparams["Args"])
		}
		log := strings.Join(e.logLines(two.ID), "\n")
		if !strings.Contains(log, "step two read 5 numbers from "+one.ID+", total 15") {
			t.Fatalf("step two's log:\n%s", log)
		}
		if !strings.Contains(strings.Join(e.logLines(id), "\n"), "pipeline completed") {
			t.Fatalf("controller log lacks its end:\n%s", strings.Join(e.logLines(id), "\n"))
		}
	})
}

func containsTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// The base task of the optimization: its objective peaks at x=3, y=1, where
// it is 10.
const trainTask = `
s = Session()
me = Task.init(s, None, None)
p = me.get_parameters()
x, y = float(p["Args/x"]), float(p["Args/y"])
for it in range(3):
    me.report_scalar("objective", "value", 10 - (x - 3) ** 2 - (y - 1) ** 2 - (2 - it), it)
print("trained with x=%s y=%s" % (x, y))
`

// TestSDKHyperParameterOptimizerRandomSearch: an optimizer run on this
// machine clones its base task with random values, enqueues the clones for
// our daemon, reads each one's objective from last_metrics and ranks them.
func TestSDKHyperParameterOptimizerRandomSearch(t *testing.T) {
	t.Parallel()
	onBackends(t, func(t *testing.T, e *env) {
		e.createQueue("hpo jobs")
		d := e.sdkDaemon("--queue", "hpo jobs")
		base := e.runLocal(t, "base", fmt.Sprintf(`
s = Session()
t = Task.create(s, "hpo demo", "train model")
t._edit(script={"binary": "python3", "entry_point": "train.py", "working_dir": ".", "diff": %q})
t.update_parameters({"Args/x": "0", "Args/y": "0"})
print("RESULT base", t.id)
`, sdkreplay.Script(trainTask)))["base"]
		got := e.runLocal(t, "optimizer", fmt.Sprintf(`
s = Session()
me = Task.init(s, "hpo demo", "random search", "optimizer")
opt = HyperParameterOptimizer(s, %q, {"Args/x": [1, 2, 3, 4], "Args/y": [0, 1, 2]}, "objective", "value",
                              "hpo jobs", max_concurrent=2, total_max_jobs=4, poll_seconds=0.5, seed=7)
results = opt.start()
for tid, (status, objective) in sorted(results.items()):
    print("RESULT job_%%s %%s %%s" %% (tid, status, objective))
top = opt.get_top_experiments(2)
print("RESULT top", ",".join(t["id"] for t in top))
me.mark_completed()
print("RESULT optimizer", me.id)
`, base))
		opt := got["optimizer"]
		kids := e.children(opt)
		if len(kids) != 4 {
			t.Fatalf("optimizer made %d jobs, want 4\n%s", len(kids), d.Output())
		}
		objectives := map[string]float64{}
		seen := map[string]bool{}
		for _, k := range kids {
			x, y := k.Hyperparams["Args"]["x"].Value, k.Hyperparams["Args"]["y"].Value
			var fx, fy float64
			fmt.Sscan(x, &fx)
			fmt.Sscan(y, &fy)
			want := 10 - (fx-3)*(fx-3) - (fy-1)*(fy-1)
			line := got["job_"+k.ID]
			var status string
			var objective float64
			fmt.Sscan(line, &status, &objective)
			if k.Status != "completed" || k.ID == base || !containsTag(k.Tags, "optimizer") || status != "completed" || objective != want {
				t.Fatalf("job %s: status %s, tags %v, x=%s y=%s, optimizer saw %q, want objective %v", k.ID, k.Status, k.Tags, x, y, line, want)
			}
			if seen[x+","+y] {
				t.Fatalf("random search repeated x=%s y=%s", x, y)
			}
			seen[x+","+y] = true
			objectives[k.ID] = want
		}
		top := strings.Split(got["top"], ",")
		if len(top) != 2 || objectives[top[0]] < objectives[top[1]] {
			t.Fatalf("top experiments %v, objectives %v", top, objectives)
		}
		for id, o := range objectives {
			if o > objectives[top[0]] {
				t.Fatalf("top experiment %s (%v) is not the best: %s has %v", top[0], objectives[top[0]], id, o)
			}
		}
		if b := e.get(base); b.Status != "created" || b.Hyperparams["Args"]["x"].Value != "0" {
			t.Fatalf("the base task changed: %s %v", b.Status, b.Hyperparams["Args"])
		}
	})
}

// TestSDKDatasetMadeAndFetchedByTasks: a task that our daemon runs creates
// a dataset, uploads it to our file server and finalizes it; another task
// gets it by project and name (with an alias) and reads its files.
func TestSDKDatasetMadeAndFetchedByTasks(t *testing.T) {
	t.Parallel()
	onBackends(t, func(t *testing.T, e *env) {
		d := e.sdkDaemon("--queue", "default")
		producer := e.task("make dataset", "", sdkreplay.Script(`
s = Session()
me = Task.init(s, None, None)
os.makedirs("images/train")
for i in range(20):
    open("images/train/%02d.txt" % i, "w").write("sample %d\n" % i * (i + 1))
ds = Dataset.create(s, dataset_name="samples", dataset_project="data lake/vision")
ds.add_files("images")
ds.upload()
ds.finalize()
print("dataset", ds.id, "finalized")
`))
		if got := e.waitStatus(producer, 5*time.Minute, "completed", "failed", "stopped"); got.Status != "completed" {
			t.Fatalf("producer %s %q\n%s\n%s", got.Status, got.StatusReason, strings.Join(e.logLines(producer), "\n"), d.Output())
		}
		var dataset string
		for _, l := range e.logLines(producer) {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "dataset" && f[2] == "finalized" {
				dataset = f[1]
			}
		}
		ds := e.get(dataset)
		if ds.Status != "completed" || ds.Type != "data_processing" || !containsTag(ds.SystemTags, "dataset") || ds.Parent != "" {
			t.Fatalf("dataset task %s: %s %s %v", dataset, ds.Status, ds.Type, ds.SystemTags)
		}
		consumer := e.task("use dataset", "", sdkreplay.Script(`
s = Session()
me = Task.init(s, None, None)
ds = Dataset.get(s, dataset_project="data lake/vision", dataset_name="samples", alias="train")
folder = ds.get_local_copy()
files = sorted(os.listdir(os.path.join(folder, "train")))
size = sum(os.path.getsize(os.path.join(folder, "train", f)) for f in files)
print("fetched", ds.id, len(files), "files", size, "bytes")
`))
		if got := e.waitStatus(consumer, 5*time.Minute, "completed", "failed", "stopped"); got.Status != "completed" {
			t.Fatalf("consumer %s %q\n%s", got.Status, got.StatusReason, strings.Join(e.logLines(consumer), "\n"))
		}
		size := 0
		for i := range 20 {
			size += len(fmt.Sprintf("sample %d\n", i)) * (i + 1)
		}
		want := fmt.Sprintf("fetched %s 20 files %d bytes", dataset, size)
		if log := strings.Join(e.logLines(consumer), "\n"); !strings.Contains(log, want) {
			t.Fatalf("consumer log lacks %q:\n%s", want, log)
		}
		c := e.get(consumer)
		if c.Hyperparams["Datasets"]["train"].Value != dataset || !strings.Contains(fmt.Sprint(c.Runtime["datasets"]), dataset) {
			t.Fatalf("consumer's dataset alias %v, runtime %v", c.Hyperparams["Datasets"], c.Runtime)
		}
	})
}
