package taskprep

import (
	"slices"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// TestEnv: the task's process environment (spec 3.7). Not parallel: it
// reads this process's environment.
func TestEnv(t *testing.T) {
	task := &api.Task{ID: "t1", Hyperparams: map[string]map[string]api.ParamItem{"Environment": {
		"MY_VAR": {Value: "x=1"}, "BAD=NAME": {Value: "no"}, "": {Value: "no"},
	}}}
	cases := []struct {
		name        string
		env         map[string]string
		pythonPath  []string
		logLevel    string
		want        []string // KEY=VALUE present
		wantMissing []string // KEY= absent
	}{
		{
			name: "agent's git credentials stay out of a process",
			env: map[string]string{"CLEARML_AGENT_GIT_USER": "u", "CLEARML_AGENT_GIT_PASS": "p",
				"CLEARML_AGENT_GIT_ASKPASS_TOKEN": "s", "PYTHONPATH": "/old"},
			pythonPath:  []string{"/work", "/code"},
			logLevel:    "debug",
			want:        []string{"CLEARML_TASK_ID=t1", "TRAINS_TASK_ID=t1", "CLEARML_LOG_TASK_TO_BACKEND=0", "PYTHONUNBUFFERED=1", "PYTHONPATH=/work:/code:/old", "CLEARML_LOG_LEVEL=DEBUG", "MY_VAR=x=1"},
			wantMissing: []string{"CLEARML_AGENT_GIT_USER", "CLEARML_AGENT_GIT_PASS", "CLEARML_AGENT_GIT_ASKPASS_TOKEN", "BAD", ""},
		},
		{
			name:        "a container keeps them for the task's own git use",
			env:         map[string]string{"CLEARML_AGENT_IN_CONTAINER": "1", "CLEARML_AGENT_GIT_USER": "u", "CLEARML_AGENT_GIT_PASS": "p"},
			want:        []string{"CLEARML_AGENT_GIT_USER=u", "CLEARML_AGENT_GIT_PASS=p", "CLEARML_TASK_ID=t1"},
			wantMissing: []string{"CLEARML_AGENT_IN_CONTAINER", "PYTHONPATH", "CLEARML_LOG_LEVEL"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"CLEARML_AGENT_GIT_USER", "CLEARML_AGENT_GIT_PASS", "CLEARML_AGENT_GIT_ASKPASS_TOKEN",
				"CLEARML_AGENT_IN_CONTAINER", "PYTHONPATH", "CLEARML_LOG_LEVEL"} {
				t.Setenv(k, "")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			got := Env(task, c.logLevel, c.pythonPath)
			last := map[string]string{} // what a process sees: the last of a name
			for _, kv := range got {
				k, v, _ := strings.Cut(kv, "=")
				last[k] = v
			}
			for _, w := range c.want {
				k, v, _ := strings.Cut(w, "=")
				if got, ok := last[k]; !ok || got != v {
					t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
				}
			}
			for _, k := range c.wantMissing {
				if v, ok := last[k]; ok && v != "" {
					t.Errorf("%s = %q, want it absent", k, v)
				}
			}
			if slices.ContainsFunc(got, func(kv string) bool { return strings.HasPrefix(kv, "BAD=NAME") }) {
				t.Error("a parameter whose name holds '=' reached the environment")
			}
		})
	}
}
