package docker

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Fuzz inputs holding argument lists separate the arguments with NUL.
func fuzzArgs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

var argSeeds = []string{
	"--ipc=host\x00-e\x00A=1\x00-v\x00/a:/b",
	"-it\x00--rm=false\x00-eK=V\x00-e=K=V\x00-m\x004g",
	"--net\x00host\x00--dns-opt=x\x00--privileged",
	"--\x00",
	"--detach\x00--restart=always",
	"-e\x00=x\x00--env",
	"-ti=true\x00-P\x00-p\x008080:80",
	"image\x00--gpus\x00all",
	"-e\x00T=$HOST_TOKEN\x00-e\x00H=${HOME}/x\x00-e\x00NAME\x00-e\x00U=$UNSET",
}

// FuzzParseArgs: a refusal is an *ArgError; accepted options render to
// canonical tokens that parse back to the same options.
func FuzzParseArgs(f *testing.F) {
	for _, s := range argSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		args, err := ParseArgs(fuzzArgs(in))
		if err != nil {
			var ae *ArgError
			if !errors.As(err, &ae) || ae.Msg == "" {
				t.Fatalf("ParseArgs(%q): error %#v is not an *ArgError", fuzzArgs(in), err)
			}
			return
		}
		again, err := ParseArgs(Render(args))
		if err != nil || !reflect.DeepEqual(normArgs(again), normArgs(args)) {
			t.Fatalf("ParseArgs(Render(%v)) = %v, %v", args, again, err)
		}
	})
}

func normArgs(a []Arg) []Arg {
	if len(a) == 0 {
		return nil
	}
	return a
}

// FuzzMerge: the merged options never hold what the agent manages
// (--detach, --cidfile, --restart, --help) or --rm, render to tokens that
// parse back, and the result does not depend on the run.
func FuzzMerge(f *testing.F) {
	for i, s := range argSeeds {
		f.Add(s, argSeeds[(i+3)%len(argSeeds)], uint8(i))
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"HOST_TOKEN": "t0k", "HOME": "/home/u", "NAME": "n", "EMPTY": ""}[k]
		return v, ok
	}
	f.Fuzz(func(t *testing.T, extra, task string, flags uint8) {
		o := MergeOptions{ExtraPrecedesTask: flags&1 == 0, AllowHostEnv: flags&2 != 0, LookupEnv: env,
			Protected: DefaultProtected, Forbidden: DefaultForbidden}
		if flags&4 != 0 {
			o.Filters = []*regexp.Regexp{regexp.MustCompile(`--env`), regexp.MustCompile(`--shm-size`)}
		}
		m, err := Merge(fuzzArgs(extra), fuzzArgs(task), o)
		m2, err2 := Merge(fuzzArgs(extra), fuzzArgs(task), o)
		if !reflect.DeepEqual(m, m2) || (err == nil) != (err2 == nil) {
			t.Fatal("Merge is not deterministic")
		}
		if err != nil {
			return
		}
		for _, a := range m.Args {
			if _, bad := managed[a.Name]; bad || a.Name == "rm" {
				t.Fatalf("merged options hold --%s: %v", a.Name, m.Args)
			}
		}
		if _, err := ParseArgs(Render(m.Args)); err != nil {
			t.Fatalf("merged options %v do not parse back: %v", Render(m.Args), err)
		}
	})
}

// FuzzTaskContainer reads container sections and legacy docker_cmd
// strings: no panic, and an image that keeps blanks (a quoted one) is
// refused by ValidImage before docker could see it.
func FuzzTaskContainer(f *testing.F) {
	f.Add("nvidia/cuda:12.1 --ipc=host", "-e A=1", "apt-get install x", "")
	f.Add("", "", "", "python:3.11 -e 'A=b c'")
	f.Add("img", "'unterminated", "", "")
	f.Add(" ", " ", "", "  ")
	f.Fuzz(func(t *testing.T, image, arguments, setup, dockerCmd string) {
		c, err := TaskContainer(map[string]string{"image": image, "arguments": arguments, "setup_shell_script": setup},
			map[string]any{"docker_cmd": dockerCmd})
		if err != nil {
			return
		}
		if strings.ContainsAny(c.Image, " \t") && ValidImage(c.Image) == nil {
			t.Fatalf("image %q keeps blanks and is valid (from %q / %q)", c.Image, image, dockerCmd)
		}
		if c.SetupScript != setup {
			t.Fatalf("setup script %q became %q", setup, c.SetupScript)
		}
	})
}

// FuzzDefaultsFromCLI reads --docker values and the configured default.
func FuzzDefaultsFromCLI(f *testing.F) {
	f.Add("nvidia/cuda:12.1 --ipc=host\x00-e\x00A=1", "", "", "--shm-size=1g")
	f.Add("", "img -e 'A=b c'", "conf", "")
	f.Add("", "", "  ", "")
	f.Fuzz(func(t *testing.T, cli, envImage, confImage, confArgs string) {
		d, err := DefaultsFromCLI(fuzzArgs(cli), envImage, confImage, fuzzArgs(confArgs))
		if err != nil {
			return
		}
		if d.FromCLI != (cli != "") || (d.FromCLI && d.Image == "") {
			t.Fatalf("DefaultsFromCLI(%q): %+v", fuzzArgs(cli), d)
		}
		if !d.FromCLI && strings.TrimSpace(d.Image) == "" {
			t.Fatalf("no default image: %+v", d)
		}
	})
}

// FuzzContainerName renders agent.docker_container_name_format: a name it
// returns is a valid container name.
func FuzzContainerName(f *testing.F) {
	f.Add("clearml-{task_id}-{rand_string:.4}", "abc123", "host:gpu0")
	f.Add("w-{worker_id}", "t", "w")
	f.Add("{task_id:.0}x", "t", "w")
	f.Add("{task_id:.99999999999999999999}", "t", "w")
	f.Add("{unknown}{", "t", "w")
	f.Fuzz(func(t *testing.T, format, task, worker string) {
		fields := map[string]string{"task_id": task, "worker_id": worker, "rand_string": "0123456789"}
		name, err := ContainerName(format, fields)
		if err != nil {
			return
		}
		if !nameRE().MatchString(name) {
			t.Fatalf("ContainerName(%q) = %q, not a valid container name", format, name)
		}
	})
}

// FuzzMatchRules reads agent.default_docker.match_rules (given as JSON)
// and matches a task against them: no panic, and a rule that matches
// names its image.
func FuzzMatchRules(f *testing.F) {
	f.Add(`[{"image": "tf:2.6", "arguments": "--ipc=host -e A=1", "match": {"project": "^research/",
		"script": {"repository": "github.com/org/", "branch": "^main$",
		"requirements": {"pip": {"tensorflow": "~=2.6", "Scikit_Learn": "*"}}}}}]`,
		"research/nlp", "tensorflow==2.6.3\nscikit-learn>=1\n")
	f.Add(`[{"image": "i", "arguments": ["--ipc=host", 3], "match": {"script": {"requirements": {"pip": {"x": ">=1.13, <2", "y": "==1.*"}}}}}]`,
		"p", "x==1.13.1+cu117\ny==1.2\n")
	f.Add(`[{"image": "i", "match": {"project": "("}}]`, "", "")
	f.Add(`"not a list"`, "", "")
	f.Fuzz(func(t *testing.T, rulesJSON, project, reqs string) {
		var v any
		if json.Unmarshal([]byte(rulesJSON), &v) != nil {
			return
		}
		rules, err := ParseMatchRules(v)
		if err != nil {
			return
		}
		info := TaskInfo{Project: project, Repository: project, Branch: project, Binary: "python3", Requirements: reqs}
		for _, r := range rules {
			ok, err := r.Matches(info)
			if err != nil {
				continue
			}
			if d := r.Describe(); ok && !strings.Contains(d, r.Image) {
				t.Fatalf("Describe() %q does not name the image %q", d, r.Image)
			}
		}
	})
}
