package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/docker"
	"github.com/goclearml/agent/internal/dockertest"
)

// inspectConfig creates (never starts) a container with args and returns
// the configuration docker made of them.
func inspectConfig(t *testing.T, image string, args []string) map[string]any {
	t.Helper()
	out, err := exec.Command("docker", append(append([]string{"create", "--label", "clearml-agent-test=cli-oracle"}, args...), image, "true")...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker create %q: %v\n%s", args, err, out)
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command("docker", "rm", "-f", id).Run()
	raw, err := exec.Command("docker", "inspect", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(raw, &got); err != nil || len(got) != 1 {
		t.Fatalf("docker inspect: %v", err)
	}
	c := got[0]
	cfg := c["Config"].(map[string]any)
	if h, _ := cfg["Hostname"].(string); strings.HasPrefix(id, h) {
		cfg["Hostname"] = "(generated)"
	}
	host := c["HostConfig"].(map[string]any)
	// The order of variables with distinct names, and of bind mounts with
	// distinct targets, does not matter (and docker does not keep it).
	env, _ := cfg["Env"].([]any)
	sort.Slice(env, func(i, j int) bool { return fmt.Sprint(env[i]) < fmt.Sprint(env[j]) })
	binds, _ := host["Binds"].([]any)
	sort.Slice(binds, func(i, j int) bool { return fmt.Sprint(binds[i]) < fmt.Sprint(binds[j]) })
	return map[string]any{"Env": env, "Hostname": cfg["Hostname"], "User": cfg["User"], "WorkingDir": cfg["WorkingDir"],
		"Labels": cfg["Labels"], "Tty": cfg["Tty"], "OpenStdin": cfg["OpenStdin"], "Binds": binds, "ShmSize": host["ShmSize"],
		"NetworkMode": host["NetworkMode"], "IpcMode": host["IpcMode"], "Memory": host["Memory"], "CpuShares": host["CpuShares"],
		"Privileged": host["Privileged"], "CapAdd": host["CapAdd"], "Ulimits": host["Ulimits"], "Tmpfs": host["Tmpfs"],
		"Init": host["Init"], "ReadonlyRootfs": host["ReadonlyRootfs"], "SecurityOpt": host["SecurityOpt"], "Dns": host["Dns"],
		"ExtraHosts": host["ExtraHosts"], "Mounts": host["Mounts"], "OomScoreAdj": host["OomScoreAdj"], "PortBindings": host["PortBindings"]}
}

// The canonical form the agent renders (--name=value) makes exactly the
// container the user's own form makes, as the docker CLI itself reads
// both.
func TestCanonicalArgumentsMatchDockerCLI(t *testing.T) {
	image := dockertest.Busybox(t)
	dir := t.TempDir()
	cases := [][]string{
		{"-e", "A=1", "-eB=2", "-e=C=3", "--env", "D=a b", "--env=E="},
		{"-v", dir + ":/data:ro", "--volume=" + dir + ":/other", "--mount", "type=bind,src=" + dir + ",dst=/m"},
		{"--shm-size", "256m", "--ipc=host", "--net", "host"},
		{"-it", "-u", "1000:1000", "-w", "/tmp", "-h", "box", "-m", "64m", "-c", "512", "-l", "k=v"},
		{"--privileged", "--cap-add=SYS_PTRACE", "--security-opt", "seccomp=unconfined", "--init", "--read-only=true"},
		{"--ulimit", "nofile=1024:2048", "--tmpfs", "/run:rw,size=8m", "--dns", "1.1.1.1", "--add-host", "h:10.0.0.1"},
		{"--oom-score-adj", "-500", "-p", "8080:80", "-p9090:90/udp"},
	}
	for _, args := range cases {
		parsed, err := docker.ParseArgs(args)
		if err != nil {
			t.Fatalf("ParseArgs(%q): %v", args, err)
		}
		canonical := docker.Render(parsed)
		user, ours := inspectConfig(t, image, args), inspectConfig(t, image, canonical)
		if !reflect.DeepEqual(user, ours) {
			t.Errorf("%q and %q make different containers:\n%v\n%v", args, canonical, user, ours)
		}
	}
}

// The cleanup policy removes old stopped agent containers and the images
// the agent used long ago, and keeps an image a container still uses.
func TestCleanupPolicy(t *testing.T) {
	base := dockertest.Busybox(t)
	ctx := context.Background()
	c := docker.Client{}
	// Distinct images (a tag of a shared image would only be untagged).
	tag := func(name string) string {
		ref := "clearml-agent-test/cleanup-" + name + ":1"
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		body := []byte(name + "\n")
		tw.WriteHeader(&tar.Header{Name: "marker", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write(body)
		tw.Close()
		cmd := exec.Command("docker", "import", "-", ref)
		cmd.Stdin = &buf
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker import: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", ref).Run() })
		return ref
	}
	old, inUse, recent := tag("old"), tag("inuse"), tag("recent")
	// Only this test's containers: other tests' agent containers may be
	// just created, and the policy here has no age limit.
	runLabel := fmt.Sprintf("%s=cleanup-test-%d", docker.LabelRun, time.Now().UnixNano())
	stopped, err := exec.Command("docker", "create", "--label", runLabel, base, "true").Output()
	if err != nil {
		t.Fatal(err)
	}
	stoppedID := strings.TrimSpace(string(stopped))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", stoppedID).Run() })
	user, err := exec.Command("docker", "create", "--label", "clearml-agent-test=cleanup", inUse, "true").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", strings.TrimSpace(string(user))).Run() })

	usage := docker.NewImageUsage(t.TempDir() + "/images.json")
	// Two images last used two hours ago, one now.
	docker.SetUsageClock(usage, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	usage.Used(old)
	usage.Used(inUse)
	docker.SetUsageClock(usage, time.Now)
	usage.Used(recent)
	p := docker.CleanupPolicy{Enabled: true, ContainerMaxAge: time.Nanosecond, ImageMaxAge: time.Hour, Label: runLabel}
	rep, err := p.Cleanup(ctx, c, usage, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(rep.Containers, stoppedID) {
		t.Errorf("stopped agent container not removed: %v", rep.Containers)
	}
	if !contains(rep.Images, old) || contains(rep.Images, inUse) || contains(rep.Images, recent) {
		t.Errorf("images removed = %v (want only %s)", rep.Images, old)
	}
	if exec.Command("docker", "image", "inspect", old).Run() == nil || exec.Command("docker", "image", "inspect", inUse).Run() != nil {
		t.Errorf("engine state does not match the report")
	}
	if _, ok := usage.Load()[old]; ok {
		t.Errorf("removed image still recorded")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
