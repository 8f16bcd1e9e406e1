package docker

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseArgsForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []string
		want []string // canonical tokens
	}{
		{[]string{"--ipc=host"}, []string{"--ipc=host"}},
		{[]string{"--ipc", "host"}, []string{"--ipc=host"}},
		{[]string{"-e", "K=V"}, []string{"--env=K=V"}},
		{[]string{"-eK=V"}, []string{"--env=K=V"}},
		{[]string{"-e=K=V"}, []string{"--env=K=V"}},
		{[]string{"--env", "K=a b"}, []string{"--env=K=a b"}},
		{[]string{"-e", "K="}, []string{"--env=K="}}, // an explicit empty value is the user's choice
		{[]string{"-v", "/a:/b:ro", "--volume=/c:/d"}, []string{"--volume=/a:/b:ro", "--volume=/c:/d"}},
		{[]string{"--shm-size=8g", "--network", "host"}, []string{"--shm-size=8g", "--network=host"}},
		{[]string{"--net=host", "--net-alias", "x", "--dns-opt", "ndots:1"}, []string{"--network=host", "--network-alias=x", "--dns-option=ndots:1"}},
		{[]string{"-it"}, []string{"--interactive", "--tty"}},
		{[]string{"-tie", "A=1"}, []string{"--tty", "--interactive", "--env=A=1"}},
		{[]string{"-tieA=1"}, []string{"--tty", "--interactive", "--env=A=1"}},
		{[]string{"--privileged", "--init", "--rm=false", "--read-only=true"}, []string{"--privileged", "--init", "--rm=false", "--read-only=true"}},
		{[]string{"-P", "-p", "8080:80", "-p9090:90"}, []string{"--publish-all", "--publish=8080:80", "--publish=9090:90"}},
		{[]string{"--oom-score-adj", "-500"}, []string{"--oom-score-adj=-500"}}, // a value may start with '-'
		{[]string{"-u", "1000:1000", "-w", "/work", "-h", "box", "-m", "4g", "-c", "512", "-l", "a=b"},
			[]string{"--user=1000:1000", "--workdir=/work", "--hostname=box", "--memory=4g", "--cpu-shares=512", "--label=a=b"}},
		{[]string{"--gpus", `"device=0,1"`}, []string{`--gpus="device=0,1"`}},
		{[]string{"--ulimit", "nofile=1024:2048", "--cap-add=SYS_PTRACE", "--security-opt", "seccomp=unconfined"},
			[]string{"--ulimit=nofile=1024:2048", "--cap-add=SYS_PTRACE", "--security-opt=seccomp=unconfined"}},
		{[]string{"--mount", "type=bind,src=/a,dst=/b", "--tmpfs", "/run:rw,size=64m"}, []string{"--mount=type=bind,src=/a,dst=/b", "--tmpfs=/run:rw,size=64m"}},
		{[]string{"--ipc=host", "--"}, []string{"--ipc=host"}},
		{nil, []string{}},
	}
	for _, c := range cases {
		args, err := ParseArgs(c.in)
		if err != nil {
			t.Errorf("ParseArgs(%q): %v", c.in, err)
			continue
		}
		if got := Render(args); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseArgs(%q) = %q, want %q", c.in, got, c.want)
		}
		// The canonical form parses to the same options.
		again, err := ParseArgs(Render(args))
		if err != nil || !reflect.DeepEqual(again, args) {
			t.Errorf("canonical form of %q does not round-trip: %v %v", c.in, again, err)
		}
	}
}

func TestParseArgsRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"--bogus"}, `unknown docker run option "--bogus"`},
		{[]string{"--bogus=1"}, `unknown docker run option "--bogus"`},
		{[]string{"-Z"}, `unknown docker run option "-Z"`},
		{[]string{"-iZ"}, `unknown docker run option "-Z"`},
		{[]string{"--"}, ""},
		{[]string{"--", "image"}, `unexpected "image" after "--"`},
		{[]string{"nvidia/cuda"}, `unexpected word "nvidia/cuda"`},
		{[]string{"-e"}, "docker option -e needs a value"},
		{[]string{"--env"}, "docker option --env needs a value"},
		{[]string{"--env="}, "docker option --env has an empty value"},
		{[]string{"-e", ""}, "docker option -e has an empty value"},
		{[]string{"-e", "=V"}, `has no variable name`},
		{[]string{"--network", " "}, "has an empty value"},
		{[]string{"--rm=maybe"}, "takes true or false"},
		{[]string{"-"}, `unexpected word "-"`},
		{[]string{"--=x"}, `unknown docker run option "--"`},
	}
	for _, c := range cases {
		_, err := ParseArgs(c.in)
		if c.want == "" {
			if err != nil {
				t.Errorf("ParseArgs(%q): %v", c.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseArgs(%q) error = %v, want %q", c.in, err, c.want)
		}
	}
}

// Every option of the table parses in its long form, and with a value
// when it takes one.
func TestEveryOptionParses(t *testing.T) {
	t.Parallel()
	for name, spec := range runOptions.long {
		in := []string{"--" + name}
		if spec.kind == valueOpt {
			in = append(in, "x=1")
		}
		args, err := ParseArgs(in)
		if err != nil || len(args) != 1 || args[0].Name != spec.long {
			t.Errorf("--%s: %v %v", name, args, err)
		}
	}
}
