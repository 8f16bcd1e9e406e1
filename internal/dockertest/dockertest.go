// Package dockertest gives docker-mode tests a real docker engine and the
// local images they run in. No registry is reachable where the tests run,
// so the images are built here, once per machine, with `docker import`:
// a static busybox for fast tests, and a Debian made by debootstrap with
// python3, venv, pip and git for the Python path. Images are tagged with a
// version and reused while present. Where a prerequisite is missing the
// test skips, saying what is missing.
package dockertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/localimage"
)

// Image tags; bump the version when the recipe changes.
const (
	BusyboxImage = "clearml-agent-test/busybox:2"
	PythonImage  = "clearml-agent-test/python:bookworm-1"
)

// Require skips the test unless a docker engine answers.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker CLI not installed: docker-mode tests need a docker engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Skipf("docker engine not reachable (%v: %s): docker-mode tests need a running docker engine", err, strings.TrimSpace(string(out)))
	}
}

func haveImage(ref string) bool { return localimage.Exists(context.Background(), ref) }

// lock serialises image builds across test processes.
func lock(t testing.TB) func() {
	t.Helper()
	unlock, err := localimage.LockBuilds()
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}

// Busybox returns the busybox image, building it from the host's static
// busybox (Debian's busybox-static) when it is not there yet.
func Busybox(t testing.TB) string {
	t.Helper()
	Require(t)
	if haveImage(BusyboxImage) {
		return BusyboxImage
	}
	unlock := lock(t)
	defer unlock()
	if haveImage(BusyboxImage) {
		return BusyboxImage
	}
	if err := localimage.Busybox(context.Background(), BusyboxImage); errors.Is(err, localimage.ErrNoBusybox) {
		t.Skip("docker-mode tests build their image from a static busybox: " + err.Error())
	} else if err != nil {
		t.Fatal(err)
	}
	return BusyboxImage
}

// Python returns a Debian image with python3, venv, pip and git, built
// with debootstrap from a Debian mirror (Debian's package registry is
// reachable where the tests run; CLEARML_AGENT_TEST_DEBIAN_MIRROR changes
// the mirror). The first build takes about a minute.
func Python(t testing.TB) string {
	t.Helper()
	Require(t)
	if haveImage(PythonImage) {
		return PythonImage
	}
	unlock := lock(t)
	defer unlock()
	if haveImage(PythonImage) {
		return PythonImage
	}
	debootstrap, err := exec.LookPath("debootstrap")
	if err != nil {
		t.Skip("debootstrap not installed: the docker-mode Python test builds its image with it")
	}
	if os.Geteuid() != 0 {
		t.Skip("debootstrap needs root: the docker-mode Python test builds its image with it")
	}
	mirror := os.Getenv("CLEARML_AGENT_TEST_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	root, err := os.MkdirTemp("", "clearml-agent-test-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, debootstrap, "--variant=minbase", "--include=python3,python3-venv,python3-pip,git,ca-certificates",
		"bookworm", root, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("debootstrap of Debian bookworm from %s failed (%v); the docker-mode Python test needs it:\n%s", mirror, err, tailOf(out))
	}
	for _, p := range []string{"usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists", "var/cache/apt/archives"} {
		os.RemoveAll(filepath.Join(root, p))
	}
	os.MkdirAll(filepath.Join(root, "var/lib/apt/lists/partial"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/cache/apt/archives/partial"), 0o755)
	tarCmd := exec.CommandContext(ctx, "tar", "-C", root, "-c", ".")
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := localimage.Import(ctx, PythonImage, pipe); err != nil {
		t.Fatal(err)
	}
	if err := tarCmd.Wait(); err != nil {
		t.Fatalf("packing the Debian root: %v", err)
	}
	return PythonImage
}

func tailOf(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// Containers lists the containers (any state) carrying a label.
func Containers(t testing.TB, label string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// RemoveLabelled removes containers with the label when the test ends
// (what a failed test may leave).
func RemoveLabelled(t testing.TB, label string) {
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
			fmt.Fprintf(os.Stderr, "dockertest: removed %d container(s) left with label %s\n", len(ids), label)
		}
	})
}
