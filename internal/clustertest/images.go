// Package clustertest runs a deployment of several hosts on this
// machine's Docker engine, for the tests that break it: a PostgreSQL, three
// `clearml-agent server` replicas on it, HAProxy in front of them with
// health checks on /healthz, and daemons on hosts of their own, pointed at
// the load balancer. Each host is a container on private networks, so
// faults are Docker's own: kill, restart, pause, network disconnect.
//
// No registry is reachable where the tests run: the images are built here
// from the host's own programs (Debian's PostgreSQL and HAProxy packages,
// the static busybox) with `docker import`, and the agent binary under test
// is mounted into its hosts.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/goclearml/agent/internal/dockertest"
	"github.com/goclearml/agent/internal/localimage"
)

// Image tags; bump the number when a recipe changes.
const (
	postgresImage = "clearml-agent-test/postgres:1"
	haproxyImage  = "clearml-agent-test/haproxy:1"
)

// postgresUID is the user the database runs as (initdb refuses root).
const postgresUID = 70

// pgBin finds the host's PostgreSQL server programs (Debian installs
// them under /usr/lib/postgresql/<version>/bin).
func pgBin() (version, bin string) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	for _, m := range matches {
		bin = filepath.Dir(m)
		version = filepath.Base(filepath.Dir(bin))
	}
	return version, bin
}

// ErrSkip wraps what this machine lacks to run the bed: the tests skip,
// naming it.
var ErrSkip = errors.New("cannot run the cluster tests here")

func skip(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSkip}, args...)...)
}

// images builds (once per machine) the images the bed runs.
func images(ctx context.Context) (agentImage, pgImage, lbImage string, err error) {
	version, bin := pgBin()
	if bin == "" {
		return "", "", "", skip("PostgreSQL's server programs are not installed (Debian's postgresql); the cluster tests run them in a container")
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
		return "", "", "", skip("HAProxy is not installed (Debian's haproxy); the cluster tests run it as the load balancer")
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		return "", "", "", skip("ldd is not installed; the cluster tests find the libraries of PostgreSQL and HAProxy with it")
	}
	unlock, err := localimage.LockBuilds()
	if err != nil {
		return "", "", "", err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := localimage.Busybox(ctx, dockertest.BusyboxImage); errors.Is(err, localimage.ErrNoBusybox) {
		return "", "", "", skip("%v", err)
	} else if err != nil {
		return "", "", "", err
	}
	pg := localimage.HostImage{
		// bin/ and lib/ (plpgsql and the like), the data files, time zones.
		Paths: []string{filepath.Dir(bin), filepath.Join("/usr/share/postgresql", version), "/usr/share/zoneinfo"},
		// The JIT brings in LLVM (100 MB) and is not used.
		Skip: func(p string) bool {
			b := filepath.Base(p)
			return strings.HasPrefix(b, "llvmjit") || b == "bitcode" || b == "man" || b == "doc"
		},
		Files: map[string]string{
			"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70:postgres:/pgdata:/bin/sh\n",
			"/etc/group":  "root:x:0:\npostgres:x:70:\n",
		},
		Dirs: []localimage.Dir{{Path: "/pgdata", UID: postgresUID, Mode: 0o700}},
	}
	if err := localimage.FromHost(ctx, postgresImage, pg); err != nil {
		return "", "", "", err
	}
	if err := localimage.FromHost(ctx, haproxyImage, localimage.HostImage{Paths: []string{"/usr/sbin/haproxy"}}); err != nil {
		return "", "", "", err
	}
	return dockertest.BusyboxImage, postgresImage, haproxyImage, nil
}
