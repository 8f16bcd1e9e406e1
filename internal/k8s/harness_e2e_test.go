package k8s_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/k8s/kubetest"
	"github.com/goclearml/agent/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.StopShared()
	testbin.Cleanup()
	os.Exit(code)
}

// kenv is one cluster test: its own namespace on the shared API server,
// with the deployment's RBAC Role bound to the executor's identity, a
// test node serving that namespace, and a ClearML server process.
type kenv struct {
	t          testing.TB
	dir        string
	ns         string
	worker     string
	cluster    *kubetest.Cluster
	node       *kubetest.Node
	srv        *testbin.Server
	api        *apiclient.Client
	kubeconfig string
	agentImage string
	busybox    string
}

func newKEnv(t testing.TB, nodeLabels map[string]string) *kenv {
	t.Helper()
	dockertest.Require(t)
	cluster := kubetest.Shared(t)
	busybox := dockertest.Busybox(t)
	b := make([]byte, 4)
	rand.Read(b)
	e := &kenv{t: t, dir: t.TempDir(), ns: "t-" + hex.EncodeToString(b), worker: "k8se2e-" + hex.EncodeToString(b),
		cluster: cluster, busybox: busybox}
	ctx := context.Background()
	admin := cluster.Admin
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.CoreV1().Namespaces().Delete(context.Background(), e.ns, metav1.DeleteOptions{}) })
	e.applyRBAC()
	node, err := kubetest.StartNode(admin, "node-"+e.ns, nodeLabels, filepath.Join(e.dir, "node"), e.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Stop)
	e.node = node
	e.srv = testbin.StartServer(t, filepath.Join(e.dir, "server"))
	c, err := apiclient.New(apiclient.Config{Server: e.srv.URL, AccessKey: e.srv.AccessKey, SecretKey: e.srv.SecretKey, WorkerName: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	e.api = c
	e.kubeconfig = cluster.Kubeconfig(e.dir, false)
	if e.agentImage, err = kubetest.AgentImage(ctx, testbin.Path(t)); err != nil {
		t.Fatal(err)
	}
	return e
}

// applyRBAC creates the Role of deploy/k8s/rbac.yaml in the test's
// namespace, bound to the executor's user: the executor runs with exactly
// the rights the deployment gives it.
func (e *kenv) applyRBAC() {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "k8s", "rbac.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	var role *rbacv1.Role
	for _, doc := range strings.Split(string(data), "\n---") {
		var head struct{ Kind string }
		yaml.Unmarshal([]byte(doc), &head)
		if head.Kind == "Role" {
			role = &rbacv1.Role{}
			if err := yaml.UnmarshalStrict([]byte(doc), role); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	if role == nil {
		e.t.Fatal("no Role in deploy/k8s/rbac.yaml")
	}
	ctx := context.Background()
	role.Namespace = e.ns
	if _, err := e.cluster.Admin.RbacV1().Roles(e.ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: e.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.ExecutorUser}}}
	if _, err := e.cluster.Admin.RbacV1().RoleBindings(e.ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// executor starts `clearml-agent k8s` on the test namespace; conf is
// added to the server's client configuration (agent.k8s settings).
func (e *kenv) executor(conf string, args ...string) *testbin.Process {
	e.t.Helper()
	base, err := os.ReadFile(e.srv.ConfigPath)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "executor.conf")
	full := string(base) + "\nagent.k8s.agent_image: \"" + e.agentImage + "\"\nagent.k8s.agent_pull_policy: Never\n" + conf + "\n"
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range []string{"home", "cache"} {
		os.MkdirAll(filepath.Join(e.dir, d), 0o700)
	}
	env := []string{"CLEARML_WORKER_ID=" + e.worker, "HOME=" + filepath.Join(e.dir, "home"), "XDG_CACHE_HOME=" + filepath.Join(e.dir, "cache")}
	argv := append([]string{"--config-file", path, "k8s", "--namespace", e.ns, "--kubeconfig", e.kubeconfig,
		"--polling-interval", "0.5"}, args...)
	return testbin.Start(e.t, env, argv...)
}

// task creates a shell-script task for queue (created when missing) with
// a container section, and enqueues it.
func (e *kenv) task(c *apiclient.Client, name, queue, script string, container map[string]string) string {
	e.t.Helper()
	ctx := context.Background()
	if c == nil {
		c = e.api
	}
	body := map[string]any{"name": name, "type": "training",
		"script": map[string]any{"binary": "/bin/sh", "entry_point": "task.sh", "diff": script}}
	if container == nil {
		container = map[string]string{"image": e.busybox}
	}
	body["container"] = container
	var created api.IDResponse
	if err := c.Call(ctx, "", "tasks.create", body, &created, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Call(ctx, "", "tasks.enqueue", map[string]any{"task": created.ID, "queue_name": queue}, nil, apiclient.Default); err != nil {
		e.t.Fatal(err)
	}
	return created.ID
}

func (e *kenv) createQueue(name string) {
	e.t.Helper()
	if _, err := e.api.CreateQueue(context.Background(), name); err != nil {
		e.t.Fatal(err)
	}
}

func (e *kenv) get(id string) *api.Task {
	e.t.Helper()
	t, err := e.api.Task(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return t
}

// waitFor polls cond until it holds or d passes (then the test fails
// with what describe says).
func (e *kenv) waitFor(d time.Duration, what string, cond func() bool, describe func() string) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not within %s\n%s", what, d, describe())
		}
		<-tick.C
	}
}

// waitStatus waits for one of the statuses.
func (e *kenv) waitStatus(id string, d time.Duration, p *testbin.Process, want ...string) *api.Task {
	e.t.Helper()
	var last *api.Task
	e.waitFor(d, "task "+id+" status "+strings.Join(want, "/"), func() bool {
		last = e.get(id)
		for _, w := range want {
			if last.Status == w {
				return true
			}
		}
		return false
	}, func() string { return last.Status + " " + last.StatusReason + "\n" + e.log(id) + "\n" + p.Output() })
	return last
}

func (e *kenv) log(id string) string {
	var resp api.TaskLogResponse
	if err := e.api.Call(context.Background(), "", "events.get_task_log", map[string]any{"task": id, "batch_size": 10000,
		"navigate_earlier": false}, &resp, apiclient.Default); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range resp.Events {
		msg, _ := ev["msg"].(string)
		b.WriteString(msg)
		b.WriteString("\n")
	}
	return b.String()
}

func (e *kenv) pods() []corev1.Pod {
	e.t.Helper()
	l, err := e.cluster.Admin.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

// noSecretInPods checks the API objects: no credential of the executor
// (or given extra) appears anywhere in any pod of the namespace.
func (e *kenv) noSecretInPods(extra ...string) {
	e.t.Helper()
	for _, p := range e.pods() {
		raw, _ := json.Marshal(p)
		for _, s := range append([]string{e.srv.SecretKey, e.srv.AccessKey}, extra...) {
			if s != "" && strings.Contains(string(raw), s) {
				e.t.Fatalf("pod %s holds a secret in its spec:\n%s", p.Name, raw)
			}
		}
	}
}
