// Package kubetest gives the Kubernetes executor's tests a real cluster
// on this machine: etcd and kube-apiserver built from their Go modules
// (tools/kubebuild, cached outside the repository) and started on
// loopback, and a test node (node.go) that runs the pods bound to it on
// the local Docker engine and reports their status as a kubelet does.
// Where the binaries or Docker are missing the tests skip, naming what is
// missing.
package kubetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes release the binaries are built from.
const Version = "v1.37.2"

// ExecutorUser is the identity the executor runs as in the tests: a user
// with no rights beyond the deployment's RBAC Role, bound per namespace.
const ExecutorUser = "clearml-executor"

// BinDir is where tools/kubebuild/build.sh puts the binaries.
func BinDir() string {
	if d := os.Getenv("CLEARML_KUBE_BIN"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "clearml-agent", "kube-"+Version)
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	URL string
	// Admin is a client with every right (system:masters).
	Admin      kubernetes.Interface
	adminToken string
	execToken  string
	dir        string
	procs      []*exec.Cmd
	done       []chan struct{}
	apiLog     string
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
	sharedDir  string
)

// Shared returns the test process's cluster, started on first use. The
// test skips when the binaries are not built.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			t.Skipf("%s not built in %s: run tools/kubebuild/build.sh (test.sh does) for the Kubernetes cluster tests", b, BinDir())
		}
	}
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "clearml-kubetest-")
		if sharedErr == nil {
			shared, sharedErr = Start(sharedDir)
		}
	})
	if sharedErr != nil {
		t.Fatalf("starting the test cluster: %v", sharedErr)
	}
	return shared
}

// StopShared stops the shared cluster; call it from TestMain.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func token() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Start runs etcd and kube-apiserver with their data in dir and waits
// until the API server is ready.
func Start(dir string) (*Cluster, error) {
	c := &Cluster{dir: dir, adminToken: token(), execToken: token()}
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.run(filepath.Join(dir, "etcd.log"), filepath.Join(BinDir(), "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "default="+peerURL,
		"--unsafe-no-fsync", "--log-level", "error"); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	tokens := fmt.Sprintf("%s,admin,1,system:masters\n%s,%s,2\n", c.adminToken, c.execToken, ExecutorUser)
	os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600)
	c.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	c.apiLog = filepath.Join(dir, "kube-apiserver.log")
	if err := c.run(c.apiLog, filepath.Join(BinDir(), "kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(ports[2]), "--cert-dir", filepath.Join(dir, "certs"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"), "--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.0.0.0/24", "--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC", "--disable-admission-plugins", "ServiceAccount",
		"--enable-priority-and-fairness=false", "--event-ttl", "1h", "--endpoint-reconciler-type", "none"); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.waitReady(2 * time.Minute); err != nil {
		c.Stop()
		return nil, err
	}
	admin, err := kubernetes.NewForConfig(c.RESTConfig(c.adminToken))
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.Admin = admin
	return c, nil
}

func (c *Cluster) run(logPath, bin string, args ...string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	c.procs, c.done = append(c.procs, cmd), append(c.done, done)
	return nil
}

// waitReady polls /readyz until the API server answers ok.
func (c *Cluster) waitReady(limit time.Duration) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		for i, d := range c.done {
			select {
			case <-d:
				log, _ := os.ReadFile(c.apiLog)
				return fmt.Errorf("%s exited at start: %s", filepath.Base(c.procs[i].Path), tail(string(log), 3000))
			default:
			}
		}
		req, _ := http.NewRequest("GET", c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond) // polling a process we started for readiness
	}
	log, _ := os.ReadFile(c.apiLog)
	return fmt.Errorf("kube-apiserver not ready within %s (%s): %s", limit, last, tail(string(log), 3000))
}

// RESTConfig is a client configuration with a bearer token.
func (c *Cluster) RESTConfig(token string) *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
}

// Kubeconfig writes a kubeconfig file for the executor's identity (admin
// false) or the admin's, and returns its path.
func (c *Cluster) Kubeconfig(dir string, admin bool) string {
	tok := c.execToken
	if admin {
		tok = c.adminToken
	}
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, c.URL, tok)
	path := filepath.Join(dir, "kubeconfig")
	os.WriteFile(path, []byte(conf), 0o600)
	return path
}

// Stop stops the API server and etcd.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Process.Signal(os.Interrupt)
		select {
		case <-c.done[i]:
		case <-time.After(15 * time.Second):
			c.procs[i].Process.Kill()
			<-c.done[i]
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
