package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/sdkreplay"
)

// runReplay runs a program of the SDK replay (internal/sdkreplay) against
// the test server and returns its output; it fails the test if the program
// fails. Lines "RESULT key value" become the returned map.
func (c *filesClient) runReplay(t *testing.T, program string) map[string]string {
	t.Helper()
	py := sdkreplay.Python(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "program.py")
	if err := os.WriteFile(script, []byte(sdkreplay.Script(program)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sdkreplay.Env(c.ts.URL, c.files, c.ts.Creds.AccessKey, c.ts.Creds.SecretKey)...)
	cmd.Env = append(cmd.Env, "TMPDIR="+dir, "CLEARML_TASK_ID=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("SDK replay program failed: %v\n%s", err, out)
	}
	results := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			k, v, _ := strings.Cut(rest, " ")
			results[k] = v
		}
	}
	return results
}

// TestSDKDatasetLifecycle replays Dataset.create, add_files, upload,
// finalize and publish, then, in a second process, Dataset.list_datasets,
// Dataset.get (with an alias on the current task) and get_local_copy, and
// Task.get_reported_single_values; on SQLite and PostgreSQL.
func TestSDKDatasetLifecycle(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		made := c.runReplay(t, `
s = Session()
os.makedirs("data/sub")
open("data/a.txt", "w").write("alpha\n")
open("data/sub/b.txt", "w").write("beta\n" * 1000)
ds = Dataset.create(s, dataset_name="digits", dataset_project="team/cv", description="two files")
print("RESULT added", ds.add_files("data"))
ds.upload()
ds.task.report_single_value("files", 2)
ds.finalize()
ds.publish()
print("RESULT id", ds.id)
print("RESULT single", ds.task.get_reported_single_values())
`)
		id := made["id"]
		if made["added"] != "2" || made["single"] != "{'files': 2}" {
			t.Fatalf("dataset program results: %v", made)
		}
		task := c.task(id)
		if task["status"] != "published" || task["type"] != "data_processing" || !strings.Contains(str(task["comment"]), "two files") {
			t.Fatalf("dataset task: status %v, type %v, comment %v", task["status"], task["type"], task["comment"])
		}
		// Made outside an agent: development, as Task.create tags it.
		if tags := strings.Join(strs(task["system_tags"]), ","); tags != "dataset,development" {
			t.Fatalf("dataset task system tags %v", tags)
		}
		arts := map[string]bool{}
		for _, a := range task["execution"].(map[string]any)["artifacts"].([]any) {
			arts[a.(map[string]any)["key"].(string)] = true
		}
		if !arts["state"] || !arts["data"] {
			t.Fatalf("dataset artifacts %v", arts)
		}
		p := c.ok("projects.get_by_id", map[string]any{"project": task["project"]})["project"].(map[string]any)
		if p["name"] != "team/cv/.datasets/digits" || strings.Join(strs(p["system_tags"]), ",") != "dataset,hidden" {
			t.Fatalf("dataset project %v", p)
		}

		got := c.runReplay(t, `
s = Session()
me = Task.init(s, "team/cv", "consumer")
print("RESULT list", [(d["name"], d["project"], d["version"]) for d in Dataset.list_datasets(s, "team/cv")])
ds = Dataset.get(s, dataset_project="team/cv", dataset_name="digits", alias="train")
folder = ds.get_local_copy()
print("RESULT files", sorted(os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs))
print("RESULT b", hashlib.sha256(open(os.path.join(folder, "sub/b.txt"), "rb").read()).hexdigest()[:12])
me.reload()
print("RESULT alias", me.get_parameters().get("Datasets/train"))
print("RESULT used", me._get_runtime_properties().get("datasets"))
`)
		if got["list"] != "[('digits', 'team/cv', '1.0.0')]" || got["files"] != "['a.txt', 'sub/b.txt']" ||
			got["alias"] != id || got["used"] != "['"+id+"']" || got["b"] != "50e68e6de5e1" {
			t.Fatalf("consumer results: %v", got)
		}
	})
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestSDKReportsAndDatasetDelete replays what a task reports (scalars, a
// log line, a plot, a single value) and reads it back with the SDK's
// Task.get_reported_* methods; then Dataset.delete of a finalized dataset,
// which deletes its task and its files on the file server.
func TestSDKReportsAndDatasetDelete(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		got := c.runReplay(t, `
s = Session()
t = Task.init(s, "reports", "reporter")
for i in range(3):
    t.report_scalar("loss", "total", 1.0 / (i + 1), i)
t.report_text("hello console")
t.report_plot("roc", "curve", {"data": [{"type": "scatter", "x": [0, 1], "y": [0, 1]}], "layout": {}}, 2)
t.report_single_value("auc", 0.91)
print("RESULT scalars", t.get_reported_scalars()["loss"]["total"]["y"])
print("RESULT all", t.get_all_reported_scalars()["loss"]["total"]["x"])
print("RESULT plots", [(p["metric"], p["variant"], p["iter"]) for p in t.get_reported_plots()])
print("RESULT console", t.get_reported_console_output(1))
print("RESULT single", t.get_reported_single_values())
print("RESULT last", t.get_last_scalar_metrics()["loss"]["total"]["last"])
t.mark_completed()

os.makedirs("scratch")
open("scratch/x.bin", "wb").write(os.urandom(4096))
ds = Dataset.create(s, dataset_name="scratch", dataset_project="reports")
ds.add_files("scratch")
ds.upload()
ds.finalize()
urls = sorted(a["uri"] for a in ds.task.artifacts.values())
print("RESULT dataset", ds.id)
print("RESULT deleted", Dataset.delete(s, ds.id))
gone = []
for u in urls:
    try:
        s.download(u)
    except APIError as e:
        gone.append(e.code)
print("RESULT gone", gone)
`)
		want := map[string]string{"scalars": "[1, 0.5, 0.3333333333333333]", "all": "[0, 1, 2]",
			"plots": "[('roc', 'curve', 2)]", "console": "['hello console']", "single": "{'auc': 0.91}",
			"last": "0.3333333333333333", "deleted": "True", "gone": "[404, 404]"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		c.fail("tasks.get_by_id", map[string]any{"task": got["dataset"]}, 400, 101)
	})
}

// TestSDKPipelineDecoratorRunLocally replays PipelineDecorator.run_locally():
// two components, each a task made from its code and run as a local
// sub-process, the second fed with the first's return value, which the
// controller reads from the step's artifacts.
func TestSDKPipelineDecoratorRunLocally(t *testing.T) {
	t.Parallel()
	forEachBackendWithFiles(t, func(t *testing.T, c *filesClient) {
		component := sdkreplay.Script(`
s = Session()
me = Task.init(s, None, None)
kwargs = {k.split("/", 1)[1]: json.loads(v) for k, v in me.get_parameters().items() if k.startswith("kwargs/")}
value = sum(range(kwargs["n"])) if "n" in kwargs else kwargs["x"] * 2
me.upload_artifact("return_object", {"value": value})
`)
		got := c.runReplay(t, fmt.Sprintf(`
s = Session()
pipe = PipelineDecorator(s, "decorated", "deco demo")
total = pipe.component("sum_range", %q, n=10)
doubled = pipe.component("double", %q, x=total)
pipe.task.mark_completed()
print("RESULT values", total, doubled)
print("RESULT controller", pipe.task.id)
`, component, component))
		if got["values"] != "45 90" {
			t.Fatalf("pipeline values %q", got["values"])
		}
		steps := c.ok("tasks.get_all", map[string]any{"parent": []string{got["controller"]}, "order_by": []string{"created"},
			"only_fields": []string{"name", "status", "tags", "execution.artifacts"}})["tasks"].([]any)
		if len(steps) != 2 {
			t.Fatalf("steps %v", steps)
		}
		for _, s := range steps {
			s := s.(map[string]any)
			arts := s["execution"].(map[string]any)["artifacts"].([]any)
			if s["status"] != "completed" || len(arts) != 1 || arts[0].(map[string]any)["key"] != "return_object" {
				t.Fatalf("step %v", s)
			}
		}
		if st := c.task(got["controller"])["status"]; st != "completed" {
			t.Fatalf("controller %v", st)
		}
	})
}
