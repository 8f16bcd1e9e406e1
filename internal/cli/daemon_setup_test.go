package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/args"
	"github.com/goclearml/agent/internal/config"
	"github.com/goclearml/agent/internal/schedule"
)

func TestTaskDevices(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "CUDA_VISIBLE_DEVICES=3"}
	tests := []struct {
		name        string
		d           args.Daemon
		cpuOnly     bool
		env         []string
		visible     string
		visibleSet  bool
		added       []string // after env, before CUDA_DEVICE_ORDER
		withoutCUDA bool     // CUDA_VISIBLE_DEVICES dropped from env
	}{
		{name: "nothing named", env: []string{"PATH=/bin"}},
		{name: "inherited CUDA_VISIBLE_DEVICES", env: base, visible: "3", visibleSet: true},
		{name: "NVIDIA_VISIBLE_DEVICES first", env: append([]string{"NVIDIA_VISIBLE_DEVICES=1,2"}, base...), visible: "1,2", visibleSet: true},
		{name: "first entry of a name wins", env: []string{"NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=5"}, visible: "0", visibleSet: true},
		{name: "--cpu-only", d: args.Daemon{CPUOnly: true, GPUs: "0"}, env: base, visible: "none", visibleSet: true,
			added: []string{"NVIDIA_VISIBLE_DEVICES=none", "CUDA_VISIBLE_DEVICES=none"}},
		{name: "agent.cpu_only", cpuOnly: true, env: base, visible: "none", visibleSet: true,
			added: []string{"NVIDIA_VISIBLE_DEVICES=none", "CUDA_VISIBLE_DEVICES=none"}},
		{name: "--gpus all", d: args.Daemon{GPUs: "all"}, env: base, visible: "all", visibleSet: true,
			added: []string{"NVIDIA_VISIBLE_DEVICES=all"}, withoutCUDA: true},
		{name: "--gpus list", d: args.Daemon{GPUs: "0,1"}, env: base, visible: "0,1", visibleSet: true,
			added: []string{"NVIDIA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=0,1"}},
		{name: "--gpus MIG written with a dot", d: args.Daemon{GPUs: "0.1"}, env: base, visible: "0:1", visibleSet: true,
			added: []string{"NVIDIA_VISIBLE_DEVICES=0:1", "CUDA_VISIBLE_DEVICES=0:1"}},
		{name: "--dynamic-gpus: each task gets its own", d: args.Daemon{GPUs: "0-3", DynamicGPUs: true}, env: base,
			visible: "0-3", visibleSet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := slices.Clone(tt.env)
			childEnv, visible, set := taskDevices(&tt.d, tt.cpuOnly, env)
			if visible != tt.visible || set != tt.visibleSet {
				t.Errorf("visible = %q, %v; want %q, %v", visible, set, tt.visible, tt.visibleSet)
			}
			want := slices.Clone(tt.env)
			if tt.withoutCUDA {
				want = filterEnv(want, "CUDA_VISIBLE_DEVICES")
			}
			want = append(append(want, tt.added...), "CUDA_DEVICE_ORDER=PCI_BUS_ID")
			if !slices.Equal(childEnv, want) {
				t.Errorf("task environment:\n got %q\nwant %q", childEnv, want)
			}
			if !slices.Equal(env, tt.env) {
				t.Errorf("the daemon's environment changed: %q", env)
			}
		})
	}
}

func TestExecuteArgv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		bin, conf string
		debug     bool
		d         args.Daemon
		want      string
	}{
		{name: "plain", bin: "/usr/bin/agent", want: "/usr/bin/agent execute --disable-monitoring --log-level INFO --id T"},
		{name: "config and debug", bin: "/a", conf: "/etc/c.conf", debug: true,
			want: "/a --config-file /etc/c.conf --debug execute --disable-monitoring --log-level INFO --id T"},
		{name: "-OO and standalone", bin: "/a", d: args.Daemon{Optimization: 2, StandaloneMode: true},
			want: "/a execute --disable-monitoring --log-level INFO -OO --standalone-mode --id T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := strings.Join(executeArgv(tt.bin, tt.conf, tt.debug, "INFO", &tt.d)("T"), " ")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDaemonSchedule(t *testing.T) {
	t.Parallel()
	list := func(v ...string) *[]string { return &v }
	tests := []struct {
		name         string
		up, down     *[]string // the flags
		confUp       []string
		confDown     []string
		want         schedule.Mode
		wantWindows  int
		wantBothFail bool
	}{
		{name: "nothing", want: schedule.Always},
		{name: "from the configuration", confDown: []string{"1-2 SUN"}, want: schedule.Downtime, wantWindows: 1},
		{name: "a flag wins over the configuration", up: list("1-2 SUN", "3-4 MON"), confUp: []string{"5-6 TUE"},
			want: schedule.Uptime, wantWindows: 2},
		{name: "an empty flag drops the configuration's", up: list(), confUp: []string{"5-6 TUE"}, want: schedule.Always},
		{name: "a flag and the configuration's other kind", up: list("1-2 SUN"), confDown: []string{"5-6 TUE"}, wantBothFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := &config.Config{}
			cfg.Agent.Uptime, cfg.Agent.Downtime = tt.confUp, tt.confDown
			s, err := daemonSchedule(&args.Daemon{Uptime: tt.up, Downtime: tt.down}, cfg)
			if tt.wantBothFail {
				if !errors.Is(err, schedule.ErrBothGiven) {
					t.Fatalf("err = %v, want ErrBothGiven", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode != tt.want || len(s.Windows) != tt.wantWindows {
				t.Errorf("schedule = %v with %d windows, want %v with %d", s.Mode, len(s.Windows), tt.want, tt.wantWindows)
			}
		})
	}
}
