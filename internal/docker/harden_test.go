package docker

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// docker_args_filters match whole options: before, "^--env" matched the
// start of "--env-file=/host/path", and the docker CLI read a host file.
func TestFiltersMatchWholeOptions(t *testing.T) {
	t.Parallel()
	filters := func(exprs ...string) MergeOptions {
		o := MergeOptions{ExtraPrecedesTask: true}
		for _, e := range exprs {
			o.Filters = append(o.Filters, regexp.MustCompile(e))
		}
		return o
	}
	cases := []struct {
		name string
		o    MergeOptions
		task []string
		want []string
	}{
		{"a name allows its every value, not a longer name", filters(`^--env`),
			[]string{"--env-file=/etc/shadow", "-e", "A=1", "--env=B=2"}, []string{"--env=A=1", "--env=B=2"}},
		{"the one-letter form names the option too", filters(`^-e`, `-v`),
			[]string{"-e", "A=1", "--env-file", "/etc/shadow", "-v", "/data:/data"}, []string{"--env=A=1", "--volume=/data:/data"}},
		{"a value in the expression allows that value only", filters(`--volume=/data:/data(:ro)?`),
			[]string{"-v", "/data:/data", "-v", "/data:/data:ro", "-v", "/data:/data/../etc", "-v", "/etc:/data"},
			[]string{"--volume=/data:/data", "--volume=/data:/data:ro"}},
		{"an alias names the option", filters(`--net=bridge`),
			[]string{"--network", "bridge", "--network=host"}, []string{"--network=bridge"}},
		{"unanchored expressions match whole options too", filters(`shm-size`),
			[]string{"--shm-size=2g"}, []string{}},
	}
	for _, c := range cases {
		m, err := Merge(nil, c.task, c.o)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := Render(m.Args); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q (notes %q)", c.name, got, c.want, m.Notes)
		}
	}
}

// The hardened preset drops the task options that reach the host: host
// folders, devices, capabilities, privileges, the host's namespaces,
// files the docker CLI reads on the host.
func TestHardenedPreset(t *testing.T) {
	t.Parallel()
	o := MergeOptions{ExtraPrecedesTask: true, Hardened: true}
	refused := []string{"--privileged", "--privileged=true", "--cap-add=SYS_ADMIN", "--device=/dev/sda", "--device-cgroup-rule=a *:* rwm",
		"--pid=host", "--pid=container:other", "--ipc=host", "--uts=host", "--userns=host", "--cgroupns=host", "--network=host",
		"--net=container:x", "--volume=/:/host", "--volume=/etc:/etc:ro", "--volume=./x:/x", "--volume=~/x:/x",
		"--mount=type=bind,source=/,target=/host", "--mount=source=v,target=/v,volume-opt=device=/etc,volume-opt=o=bind",
		"--mount=type=volume,src=v,dst=/v,volume-driver=local", "--volumes-from=other", "--volume-driver=local",
		"--env-file=/etc/shadow", "--label-file=/etc/shadow", "--security-opt=seccomp=unconfined",
		"--security-opt=apparmor=unconfined", "--cgroup-parent=/", "--use-api-socket"}
	allowed := []string{"--privileged=false", "--env=A=1", "--shm-size=8g", "--volume=scratch:/scratch", "--volume=/scratch",
		"--mount=type=tmpfs,target=/t", "--mount=type=volume,source=v,target=/v", "--ipc=private", "--network=bridge",
		"--security-opt=no-new-privileges", "--cap-drop=ALL", "--user=1000"}
	m, err := Merge(nil, append(append([]string{}, refused...), allowed...), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := Render(m.Args); !reflect.DeepEqual(got, allowed) {
		t.Errorf("kept %q, want %q", got, allowed)
	}
	if len(m.Notes) != len(refused) {
		t.Fatalf("notes %q, want one per refused option (%d)", m.Notes, len(refused))
	}
	for i, n := range m.Notes {
		if !strings.Contains(n, "dropped (agent.docker_args_hardened:") {
			t.Errorf("note %d = %q", i, n)
		}
	}
	// The agent's own arguments are the operator's: not filtered.
	m, err = Merge([]string{"--privileged", "-v", "/data:/data"}, nil, o)
	if err != nil || len(m.Args) != 2 {
		t.Errorf("agent arguments: %q, %v", Render(m.Args), err)
	}
}
