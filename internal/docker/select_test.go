package docker

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestDefaultsFromCLI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		cli           []string
		env, conf     string
		confArgs      []string
		image         string
		args          []string
		fromCLI       bool
		wantErrSubstr string
	}{
		{name: "bare --docker, config default", conf: "python:3.11", confArgs: []string{"--ipc=host"}, image: "python:3.11", args: []string{"--ipc=host"}},
		{name: "bare --docker, env wins", env: "ubuntu:22.04 --ipc=host", conf: "python:3.11", image: "ubuntu:22.04", args: []string{"--ipc=host"}},
		{name: "bare --docker, nothing configured", image: FallbackImage},
		{name: "image", cli: []string{"nvidia/cuda:12.1"}, image: "nvidia/cuda:12.1", fromCLI: true},
		{name: "image and args", cli: []string{"img", "-e", "K=V", "--ipc=host"}, image: "img", args: []string{"-e", "K=V", "--ipc=host"}, fromCLI: true},
		{name: "image and args in one value", cli: []string{"img -e K=V", "--ipc=host"}, image: "img", args: []string{"-e", "K=V", "--ipc=host"}, fromCLI: true},
		{name: "blank image", cli: []string{"  "}, wantErrSubstr: "empty image name"},
		{name: "bad quoting", cli: []string{`img "x`}, wantErrSubstr: "no closing quotation"},
	}
	for _, c := range cases {
		d, err := DefaultsFromCLI(c.cli, c.env, c.conf, c.confArgs)
		if c.wantErrSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSubstr) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.wantErrSubstr)
			}
			continue
		}
		if err != nil || d.Image != c.image || !reflect.DeepEqual(d.Arguments, c.args) || d.FromCLI != c.fromCLI {
			t.Errorf("%s: got %+v %v", c.name, d, err)
		}
	}
}

func TestTaskContainer(t *testing.T) {
	t.Parallel()
	c, err := TaskContainer(map[string]string{"image": "img:1", "arguments": `-e "A=a b" --ipc=host`, "setup_shell_script": "apt-get update"}, nil)
	if err != nil || c.Image != "img:1" || !reflect.DeepEqual(c.Arguments, []string{"-e", "A=a b", "--ipc=host"}) || c.SetupScript != "apt-get update" {
		t.Fatalf("container = %+v %v", c, err)
	}
	legacy, err := TaskContainer(nil, map[string]any{"docker_cmd": "old/img:2 --shm-size=1g"})
	if err != nil || legacy.Image != "old/img:2" || !reflect.DeepEqual(legacy.Arguments, []string{"--shm-size=1g"}) {
		t.Fatalf("legacy = %+v %v", legacy, err)
	}
	joined, err := TaskContainer(map[string]string{"image": "img --ipc=host", "arguments": "-e A=1"}, nil)
	if err != nil || joined.Image != "img" || !reflect.DeepEqual(joined.Arguments, []string{"--ipc=host", "-e", "A=1"}) {
		t.Fatalf("image with arguments = %+v %v", joined, err)
	}
	if _, err := TaskContainer(map[string]string{"image": "img", "arguments": `'unclosed`}, nil); err == nil {
		t.Fatal("bad quoting accepted")
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	rule := MatchRule{Image: "pytorch:2", Arguments: []string{"--ipc=host"}, Binary: regexp.MustCompile(`python3\.11$`),
		Requirements: map[string]string{"torch": ">=2.0"}}
	defaults := Defaults{Image: "default:1", Arguments: []string{"-e", "D=1"}, Rules: []MatchRule{rule}}
	torch := TaskInfo{Binary: "python3.11", Requirements: "torch==2.1.0\nnumpy\n"}
	cases := []struct {
		name    string
		d       Defaults
		t       TaskInfo
		image   string
		usedDef bool
		rule    bool
	}{
		{name: "task image wins", d: defaults, t: TaskInfo{Container: Container{Image: "task:1", Arguments: []string{"-e", "T=1"}}}, image: "task:1"},
		{name: "override disabled", d: Defaults{Image: "default:1", DisableTaskOverride: true}, t: TaskInfo{Container: Container{Image: "task:1"}}, image: "default:1", usedDef: true},
		{name: "no image: rule matches", d: defaults, t: torch, image: "pytorch:2", usedDef: true, rule: true},
		{name: "no image: rule does not match", d: defaults, t: TaskInfo{Binary: "python3.10", Requirements: "torch==2.1.0"}, image: "default:1", usedDef: true},
		{name: "old torch", d: defaults, t: TaskInfo{Binary: "python3.11", Requirements: "torch==1.13.1"}, image: "default:1", usedDef: true},
		{name: "rules ignored with --docker IMAGE", d: Defaults{Image: "cli:1", FromCLI: true, Rules: []MatchRule{rule}}, t: torch, image: "cli:1", usedDef: true},
	}
	for _, c := range cases {
		got, err := Choose(c.d, c.t)
		if err != nil || got.Image != c.image || got.UsedDefault != c.usedDef || (got.Rule != "") != c.rule {
			t.Errorf("%s: %+v %v", c.name, got, err)
		}
	}
	if _, err := Choose(Defaults{}, TaskInfo{}); err == nil || !strings.Contains(err.Error(), "no docker image") {
		t.Errorf("missing image: %v", err)
	}
}

func TestValidImage(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"busybox", "busybox:1.36", "library/ubuntu:22.04", "nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04",
		"registry.example.com:5000/team/img:v1", "localhost/x_y__z-w.v:latest", "img@sha256:" + strings.Repeat("a", 64)} {
		if err := ValidImage(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "  ", "-it", "Upper/Case", "img:", "img:tag:two", "a b", "img@sha256:xyz", "/abs"} {
		if err := ValidImage(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMatchRules(t *testing.T) {
	t.Parallel()
	rules, err := ParseMatchRules([]any{
		map[string]any{"image": "tf:2.6", "arguments": "--ipc=host -e A=1", "match": map[string]any{
			"project": "^research/", "script": map[string]any{"repository": "github.com/org/", "branch": "^main$",
				"requirements": map[string]any{"pip": map[string]any{"tensorflow": "~=2.6", "Scikit_Learn": "*"}}}}},
	})
	if err != nil || len(rules) != 1 || !reflect.DeepEqual(rules[0].Arguments, []string{"--ipc=host", "-e", "A=1"}) {
		t.Fatalf("rules = %+v %v", rules, err)
	}
	r := rules[0]
	match := TaskInfo{Project: "research/nlp", Repository: "https://github.com/org/repo.git", Branch: "main",
		Requirements: "tensorflow==2.6.3\nscikit-learn>=1\n"}
	if ok, _ := r.Matches(match); !ok {
		t.Fatal("rule does not match")
	}
	for name, change := range map[string]func(*TaskInfo){
		"project":      func(i *TaskInfo) { i.Project = "prod/nlp" },
		"branch":       func(i *TaskInfo) { i.Branch = "dev" },
		"tf too new":   func(i *TaskInfo) { i.Requirements = "tensorflow==3.0.0\nscikit-learn\n" },
		"tf unpinned":  func(i *TaskInfo) { i.Requirements = "tensorflow\nscikit-learn\n" },
		"sklearn gone": func(i *TaskInfo) { i.Requirements = "tensorflow==2.6.0\n" },
	} {
		info := match
		change(&info)
		if ok, _ := r.Matches(info); ok {
			t.Errorf("%s: rule still matches", name)
		}
	}
	for _, bad := range []any{"not a list", []any{"x"}, []any{map[string]any{"match": map[string]any{}}},
		[]any{map[string]any{"image": "i", "match": map[string]any{"project": "("}}},
		[]any{map[string]any{"image": "i", "match": map[string]any{"script": map[string]any{"requirements": map[string]any{"pip": map[string]any{"x": "about 2"}}}}}}} {
		if _, err := ParseMatchRules(bad); err == nil {
			t.Errorf("ParseMatchRules(%v) accepted", bad)
		}
	}
}

func TestSpecifiers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v, spec string
		want    bool
	}{
		{"2.6.3", "~=2.6", true}, {"2.7", "~=2.6", true}, {"3.0", "~=2.6", false}, {"2.6.3", "~=2.6.0", true}, {"2.7.0", "~=2.6.0", false},
		{"1.13.1+cu117", ">=1.13,<2", true}, {"2.0", ">=1.13,<2", false}, {"1.2", "==1.*", true}, {"2.2", "==1.*", false},
		{"1.2", "!=1.2", false}, {"1.2.0", "==1.2", true}, {"0.9", ">0.8", true}, {"0.8", "<=0.8", true},
	}
	for _, c := range cases {
		specs, err := parseSpecifiers(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := satisfies(c.v, specs); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.v, c.spec, got, c.want)
		}
	}
}
