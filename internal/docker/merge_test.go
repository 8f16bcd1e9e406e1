package docker

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func hostEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestMerge(t *testing.T) {
	t.Parallel()
	env := hostEnv(map[string]string{"HOST_TOKEN": "t0k", "HOME": "/home/u"})
	base := MergeOptions{ExtraPrecedesTask: true, Protected: DefaultProtected, Forbidden: DefaultForbidden, LookupEnv: env}
	withFilters := base
	withFilters.Filters = []*regexp.Regexp{regexp.MustCompile(`--env`), regexp.MustCompile(`--shm-size`)}
	hostOK := base
	hostOK.AllowHostEnv = true
	taskFirst := base
	taskFirst.ExtraPrecedesTask = false
	cases := []struct {
		name        string
		extra, task []string
		o           MergeOptions
		want        []string
		notes       []string
		pass        []string
	}{
		{name: "agent first, then task",
			extra: []string{"--ipc=host", "-e", "A=1"}, task: []string{"-e", "B=2", "--shm-size", "8g"}, o: base,
			want: []string{"--ipc=host", "--env=A=1", "--env=B=2", "--shm-size=8g"}},
		{name: "protected switch set by the agent wins",
			extra: []string{"--network", "host"}, task: []string{"--net=bridge", "--ipc=host"}, o: base,
			want:  []string{"--network=host", "--ipc=host"},
			notes: []string{"task docker argument --network=bridge replaced by --network=host (protected switch)"}},
		{name: "unprotected single-value switches: both kept, the later wins in docker",
			extra: []string{"--shm-size=1g"}, task: []string{"--shm-size=8g"}, o: base,
			want: []string{"--shm-size=1g", "--shm-size=8g"}},
		{name: "task first when extra does not precede",
			extra: []string{"--network=host", "-e", "A=1"}, task: []string{"--network=none", "-e", "B=2"}, o: taskFirst,
			want:  []string{"--network=none", "--env=B=2", "--env=A=1"},
			notes: []string{"agent docker argument --network=host replaced by --network=none (protected switch)"}},
		{name: "filters keep only allowed task switches",
			extra: []string{"--privileged"}, task: []string{"--privileged", "-e", "X=1", "--shm-size=2g", "--cap-add", "ALL"}, o: withFilters,
			want: []string{"--privileged", "--env=X=1", "--shm-size=2g"},
			notes: []string{"task docker argument --privileged dropped (not allowed by agent.docker_args_filters)",
				"task docker argument --cap-add=ALL dropped (not allowed by agent.docker_args_filters)"}},
		{name: "forbidden entrypoint and task --gpus dropped, --rm ignored",
			task: []string{"--entrypoint", "/bin/bash", "--gpus", "all", "--rm"}, o: base,
			want: []string{},
			notes: []string{"task docker argument --entrypoint=/bin/bash dropped (agent.forbidden_docker_args)",
				"task docker argument --gpus=all dropped: GPU access is set by the agent (--gpus, --cpu-only)"}},
		{name: "host variables expand in the agent's -e values",
			extra: []string{"-e", "TOKEN=$HOST_TOKEN", "-e", "H=${HOME}/x"}, o: base,
			want: []string{"--env=TOKEN=t0k", "--env=H=/home/u/x"}},
		{name: "not in the task's unless allowed",
			task: []string{"-e", "TOKEN=$HOST_TOKEN"}, o: base,
			want: []string{"--env=TOKEN=$HOST_TOKEN"}},
		{name: "in the task's when allowed",
			task: []string{"-e", "TOKEN=$HOST_TOKEN"}, o: hostOK,
			want: []string{"--env=TOKEN=t0k"}},
		{name: "-e NAME passes a host variable (agent's)",
			extra: []string{"-e", "HOST_TOKEN"}, o: base,
			want: []string{"--env=HOST_TOKEN"}, pass: []string{"HOST_TOKEN"}},
		{name: "-e NAME from the task needs allow_host_environ",
			task: []string{"-e", "HOST_TOKEN"}, o: base,
			want:  []string{},
			notes: []string{"task docker argument --env=HOST_TOKEN dropped: it passes a host variable, which needs agent.docker_allow_host_environ"}},
	}
	for _, c := range cases {
		m, err := Merge(c.extra, c.task, c.o)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := Render(m.Args); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: args = %q, want %q", c.name, got, c.want)
		}
		if !reflect.DeepEqual(m.Notes, c.notes) {
			t.Errorf("%s: notes = %q, want %q", c.name, m.Notes, c.notes)
		}
		if !reflect.DeepEqual(m.PassEnv, c.pass) {
			t.Errorf("%s: pass = %q, want %q", c.name, m.PassEnv, c.pass)
		}
	}
}

func TestMergeRefusals(t *testing.T) {
	t.Parallel()
	o := MergeOptions{ExtraPrecedesTask: true, Protected: DefaultProtected, AllowHostEnv: true, LookupEnv: hostEnv(nil)}
	cases := []struct {
		extra, task []string
		want        string
	}{
		{task: []string{"-d"}, want: "task docker arguments: docker option --detach is not allowed"},
		{extra: []string{"--cidfile=/x"}, want: "agent docker arguments: docker option --cidfile is not allowed"},
		{task: []string{"--restart", "always"}, want: "--restart is not allowed"},
		{task: []string{"--help"}, want: "--help is not allowed"},
		{task: []string{"-e", "T=$UNSET_VAR"}, want: "uses host variable UNSET_VAR, which is not set"},
		{extra: []string{"-e", "T=${UNSET_VAR}"}, want: "uses host variable UNSET_VAR, which is not set"},
		{extra: []string{"-e", "UNSET_VAR"}, want: "passes host variable UNSET_VAR, which is not set"},
		{task: []string{"--nope"}, want: `task docker arguments (container.arguments): unknown docker run option "--nope"`},
		{extra: []string{"image"}, want: "agent docker arguments (agent.extra_docker_arguments"},
	}
	for _, c := range cases {
		_, err := Merge(c.extra, c.task, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Merge(%q, %q) error = %v, want %q", c.extra, c.task, err, c.want)
		}
		var ae *ArgError
		if err != nil && !errors.As(err, &ae) {
			t.Errorf("Merge(%q, %q): error is not an ArgError: %T", c.extra, c.task, err)
		}
	}
}
