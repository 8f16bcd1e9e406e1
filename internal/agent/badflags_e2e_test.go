package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
)

// Values that make no sense are refused at start with a one-line message
// naming the value, instead of being accepted (and a daemon run that
// misbehaves: a negative interval raised in silence, GPUs that do not
// exist, a cap below zero, an instance file a newline breaks).
func TestDaemonRefusesBadValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"negative polling interval", nil, []string{"--polling-interval", "-1"}, "--polling-interval: -1 is negative"},
		{"gpus that are no devices", nil, []string{"--gpus", "zzz"}, `--gpus: "zzz" is not`},
		{"negative services cap", nil, []string{"--services-mode", "-3"}, "--services-mode: -3 is negative"},
		{"worker id with a newline", []string{"CLEARML_WORKER_ID=host\nfake"}, nil, `worker id "host\nfake"`},
		{"worker name with a control character", []string{"CLEARML_WORKER_NAME=ho\x1bst"}, nil, `worker name "ho\x1bst"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			argv := append([]string{"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--queue", "default"}, c.args...)
			code, stdout, stderr := testbin.Run(t, append(e.daemonEnv(), c.env...), 30*time.Second, argv...)
			out := stdout + stderr
			if code == 0 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want an error saying %q:\n%s", code, c.want, out)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 1 {
				t.Errorf("the error takes %d lines:\n%s", n+1, stderr)
			}
		})
	}
}
