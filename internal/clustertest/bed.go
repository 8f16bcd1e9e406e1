package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// Options shape a bed.
type Options struct {
	// Replicas is the number of server replicas (3).
	Replicas int
	// Daemons are the daemon hosts, each listening to its queue.
	Daemons []Daemon
	// Binary is the clearml-agent binary the hosts run (static).
	Binary string
	// LeaseTimeout and WorkerTimeout are the servers' --lease-timeout and
	// --worker-timeout.
	LeaseTimeout, WorkerTimeout time.Duration
}

// Daemon is a daemon host.
type Daemon struct{ Name, Queue string }

// Bed is a running deployment. Container and network names start with
// its prefix; every container carries its label.
type Bed struct {
	prefix, label string
	bin           string
	dir           string
	opts          Options
	// Front joins the load balancer, the replicas and the daemons; DB
	// joins the replicas and PostgreSQL.
	Front, DB string
	PG        string
	Replicas  []string
	LB        string
	Daemons   map[string]string // daemon name → container
	AccessKey string
	SecretKey string

	mu    sync.Mutex
	ports map[string]string // container → host address of its port 8008
}

// docker runs the docker CLI and returns its trimmed output.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Start builds the images and starts the deployment. Call Close when done.
// An error wrapping ErrSkip names what this machine lacks.
func Start(ctx context.Context, o Options) (*Bed, error) {
	agentImage, pgImage, lbImage, err := images(ctx)
	if err != nil {
		return nil, err
	}
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	id := make([]byte, 3)
	rand.Read(id)
	b := &Bed{prefix: "clu" + hex.EncodeToString(id), bin: o.Binary, opts: o,
		Daemons: map[string]string{}, ports: map[string]string{}}
	b.label = "clearml-agent-test-cluster=" + b.prefix
	b.Front, b.DB = b.prefix+"-front", b.prefix+"-db"
	if b.dir, err = os.MkdirTemp("", b.prefix+"-"); err != nil {
		return nil, err
	}
	if err := b.start(agentImage, pgImage, lbImage); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bed) start(agentImage, pgImage, lbImage string) error {
	ctx := context.Background()
	for _, n := range []string{b.Front, b.DB} {
		if _, err := docker(ctx, "network", "create", "--label", b.label, n); err != nil {
			return err
		}
	}
	_, bin := pgBin()
	b.PG = b.prefix + "-pg"
	// SIGINT is PostgreSQL's fast shutdown: a restart does not wait for
	// the replicas' connections to end.
	pgScript := fmt.Sprintf(`set -e
if [ ! -f /pgdata/data/PG_VERSION ]; then
  %[1]s/initdb -D /pgdata/data -U clearml --auth=trust --no-locale -E UTF8 --no-sync >/dev/null
  echo "host all all all trust" >> /pgdata/data/pg_hba.conf
fi
exec %[1]s/postgres -D /pgdata/data -c listen_addresses='*' -c unix_socket_directories=/tmp -c max_connections=200 -c fsync=off`, bin)
	if _, err := docker(ctx, "run", "-d", "--name", b.PG, "--hostname", b.PG, "--label", b.label, "--network", b.DB,
		"--user", fmt.Sprint(postgresUID), "--stop-signal", "SIGINT", pgImage, "/bin/sh", "-c", pgScript); err != nil {
		return err
	}
	// The replicas start once the database takes connections, as a
	// deployment orders them: a replica gives up on a database that has
	// not come up within a minute, which a loaded machine's initdb can take.
	if err := b.waitPostgres(bin, 3*time.Minute); err != nil {
		return err
	}
	dsn := fmt.Sprintf("postgres://clearml@%s:5432/postgres?sslmode=disable&connect_timeout=3", b.PG)
	for i := 1; i <= b.opts.Replicas; i++ {
		name := fmt.Sprintf("%s-r%d", b.prefix, i)
		args := []string{"create", "--name", name, "--hostname", name, "--label", b.label, "--network", b.Front,
			"-v", b.bin + ":/clearml-agent:ro", "--stop-timeout", "20", agentImage,
			"/clearml-agent", "server", "--listen", "0.0.0.0:8008", "--public-url", "http://lb:8008", "--data-dir", "/data",
			"--db", dsn, "--no-ui"}
		if b.opts.LeaseTimeout > 0 {
			args = append(args, "--lease-timeout", b.opts.LeaseTimeout.String())
		}
		if b.opts.WorkerTimeout > 0 {
			args = append(args, "--worker-timeout", b.opts.WorkerTimeout.String())
		}
		if _, err := docker(ctx, args...); err != nil {
			return err
		}
		if _, err := docker(ctx, "network", "connect", b.DB, name); err != nil {
			return err
		}
		if _, err := docker(ctx, "start", name); err != nil {
			return err
		}
		b.Replicas = append(b.Replicas, name)
		// The first one makes the schema; the others find it.
		if i == 1 {
			if err := b.WaitHealthy(name, 90*time.Second); err != nil {
				return err
			}
		}
	}
	for _, r := range b.Replicas {
		if err := b.WaitHealthy(r, 90*time.Second); err != nil {
			return err
		}
	}
	conf, err := docker(ctx, "exec", b.Replicas[0], "cat", "/data/clearml.conf")
	if err != nil {
		return err
	}
	b.AccessKey, b.SecretKey = testbin.ConfValue(conf, "access_key"), testbin.ConfValue(conf, "secret_key")
	if b.AccessKey == "" || b.SecretKey == "" {
		return fmt.Errorf("no credentials in the first replica's clearml.conf:\n%s", conf)
	}
	cfg := filepath.Join(b.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(b.Replicas)), 0o644); err != nil {
		return err
	}
	b.LB = b.prefix + "-lb"
	if _, err := docker(ctx, "run", "-d", "--name", b.LB, "--hostname", b.LB, "--label", b.label, "--network", b.Front,
		"--network-alias", "lb", "-v", cfg+":/haproxy.cfg:ro", lbImage,
		"/usr/sbin/haproxy", "-f", "/haproxy.cfg", "-db"); err != nil {
		return err
	}
	if err := b.waitLB(60 * time.Second); err != nil {
		return err
	}
	for _, d := range b.opts.Daemons {
		name := b.prefix + "-" + d.Name
		if _, err := docker(ctx, "run", "-d", "--name", name, "--hostname", name, "--label", b.label, "--network", b.Front,
			"-v", b.bin+":/clearml-agent:ro",
			"-e", "CLEARML_API_HOST=http://lb:8008", "-e", "CLEARML_API_ACCESS_KEY="+b.AccessKey,
			"-e", "CLEARML_API_SECRET_KEY="+b.SecretKey, "-e", "HOME=/root", "-e", "CLEARML_WORKER_NAME="+d.Name,
			agentImage, "/clearml-agent", "daemon", "--foreground", "--create-queue", "--queue", d.Queue); err != nil {
			return err
		}
		b.Daemons[d.Name] = name
	}
	return nil
}

// haproxyConfig is the load balancer's configuration: round robin over
// the replicas that pass their health check, a request whose connection
// failed or that a replica answered 503 (not ready: it did nothing) sent
// to another one. Replicas are found through Docker's DNS, so one that
// comes back with a new address is found again. README's "Several server
// replicas" section shows the same configuration.
func haproxyConfig(replicas []string) string {
	var sb strings.Builder
	sb.WriteString(`global
  maxconn 4096

resolvers docker
  nameserver dns 127.0.0.11:53
  hold valid 1s
  hold other 1s
  hold refused 1s
  hold nx 1s
  hold timeout 1s
  hold obsolete 1s

defaults
  mode http
  option http-server-close
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  timeout http-request 30s
  retries 3
  option redispatch 1
  retry-on conn-failure 503

frontend api
  bind :8008
  default_backend replicas

backend replicas
  balance leastconn
  option httpchk GET /healthz
  http-check expect status 200
  default-server check inter 500ms fall 2 rise 2 resolvers docker init-addr last,none on-marked-down shutdown-sessions
`)
	for i, r := range replicas {
		fmt.Fprintf(&sb, "  server r%d %s:8008\n", i+1, r)
	}
	return sb.String()
}

// hostAddr is the address of a container's port 8008 on the front
// network, which this machine reaches directly (a published port would
// follow whichever network gives the container its gateway, and vanish
// when that one is disconnected). fresh reads it again (after a restart).
func (b *Bed) hostAddr(name string, fresh bool) (string, error) {
	b.mu.Lock()
	addr, ok := b.ports[name]
	b.mu.Unlock()
	if ok && !fresh {
		return addr, nil
	}
	ip, err := docker(context.Background(), "inspect", "-f", `{{(index .NetworkSettings.Networks "`+b.Front+`").IPAddress}}`, name)
	if err != nil {
		return "", err
	}
	if ip == "" || ip == "<no value>" {
		return "", fmt.Errorf("container %s has no address on %s", name, b.Front)
	}
	addr = ip + ":8008"
	b.mu.Lock()
	b.ports[name] = addr
	b.mu.Unlock()
	return addr, nil
}

// URL is the address of the load balancer from this machine.
func (b *Bed) URL() string {
	addr, err := b.hostAddr(b.LB, false)
	if err != nil {
		return "http://127.0.0.1:1"
	}
	return "http://" + addr
}

// ReplicaURL is a replica's own address from this machine.
func (b *Bed) ReplicaURL(name string) string {
	addr, err := b.hostAddr(name, false)
	if err != nil {
		return "http://127.0.0.1:1"
	}
	return "http://" + addr
}

// Health asks a replica's /healthz; code 0 means no answer.
func (b *Bed) Health(name string, timeout time.Duration) (code int, body string) {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(b.ReplicaURL(name) + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, strings.TrimSpace(string(buf[:n]))
}

// waitPostgres waits until the database container takes connections
// (pg_isready, in the container; bin is PostgreSQL's programs' folder).
func (b *Bed) waitPostgres(bin string, d time.Duration) error {
	ready := func() bool {
		_, err := docker(context.Background(), "exec", b.PG, bin+"/pg_isready", "-q", "-h", "/tmp", "-U", "clearml", "-d", "postgres")
		return err == nil
	}
	if !testwait.For(d, ready) {
		logs, _ := docker(context.Background(), "logs", "--tail", "30", b.PG)
		return fmt.Errorf("PostgreSQL (%s) not taking connections within %s:\n%s", b.PG, d, logs)
	}
	return nil
}

// WaitHealthy waits until a replica's /healthz answers 200.
func (b *Bed) WaitHealthy(name string, d time.Duration) error {
	if _, err := b.hostAddr(name, true); err != nil {
		return err
	}
	if !testwait.For(d, func() bool { code, _ := b.Health(name, 2*time.Second); return code == 200 }) {
		logs, _ := docker(context.Background(), "logs", "--tail", "30", name)
		return fmt.Errorf("replica %s not healthy within %s:\n%s", name, d, logs)
	}
	return nil
}

func (b *Bed) waitLB(d time.Duration) error {
	if _, err := b.hostAddr(b.LB, true); err != nil {
		return err
	}
	c := http.Client{Timeout: 2 * time.Second}
	ok := testwait.For(d, func() bool {
		resp, err := c.Get(b.URL() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if !ok {
		logs, _ := docker(context.Background(), "logs", "--tail", "30", b.LB)
		return fmt.Errorf("the load balancer did not pass requests within %s:\n%s", d, logs)
	}
	return nil
}

// Client is an API client through the load balancer.
func (b *Bed) Client(t testing.TB) *apiclient.Client {
	return b.ClientAt(t, b.URL())
}

// ClientAt is an API client of one address.
func (b *Bed) ClientAt(t testing.TB, url string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{Server: url, AccessKey: b.AccessKey, SecretKey: b.SecretKey,
		WorkerName: "cluster-test", RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Docker runs a docker command on the bed (a fault, usually).
func (b *Bed) Docker(args ...string) error {
	_, err := docker(context.Background(), args...)
	return err
}

// Logs is the tail of a container's output.
func (b *Bed) Logs(name string, lines int) string {
	out, err := docker(context.Background(), "logs", "--tail", fmt.Sprint(lines), name)
	if err != nil {
		return err.Error()
	}
	return out
}

// Dump writes every container's recent output to the test log.
func (b *Bed) Dump(t testing.TB) {
	names := append([]string{b.PG, b.LB}, b.Replicas...)
	for _, d := range b.opts.Daemons {
		names = append(names, b.Daemons[d.Name])
	}
	for _, n := range names {
		t.Logf("--- %s:\n%s", n, b.Logs(n, 40))
	}
}

// Close removes the bed's containers and networks.
func (b *Bed) Close() {
	ctx := context.Background()
	if out, _ := docker(ctx, "ps", "-aq", "--filter", "label="+b.label); out != "" {
		// A paused container is removed too.
		docker(ctx, append([]string{"rm", "-f"}, strings.Fields(out)...)...)
	}
	for _, n := range []string{b.Front, b.DB} {
		docker(ctx, "network", "rm", n)
	}
	os.RemoveAll(b.dir)
}
