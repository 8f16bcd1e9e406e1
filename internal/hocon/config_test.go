package hocon

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

const getterSrc = `
agent {
    worker_name: "gpu-01"
    worker_id: ""
    default_python: 3.10
    venvs_cache { max_entries: 10, free_space_threshold_gb: 2.0, lock_timeout: "30" }
    docker_force_pull: yes
    crash_on_exception: "Off"
    cpu_only: 1
    reload_config: maybe
    debug: true
    task_ping_interval_sec: 2.5
    extra_index_url: "https://one.example.com"
    extra_docker_arguments: ["--shm-size=8g", 8, true, 1.5]
    bad_list: ["ok", {x: 1}]
    nothing: null
    default_docker { image: "nvidia/cuda", arguments: [] }
}
`

func getterConfig(t *testing.T) *Config {
	t.Helper()
	c, err := ParseWithEnv("clearml.conf", []byte(getterSrc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetters(t *testing.T) {
	t.Parallel()
	c := getterConfig(t)
	strs := []struct{ path, def, want string }{
		{"agent.worker_name", "x", "gpu-01"},
		{"agent.worker_id", "x", ""},
		{"agent.default_python", "", "3.1"},
		{"agent.venvs_cache.free_space_threshold_gb", "", "2.0"},
		{"agent.venvs_cache.max_entries", "", "10"},
		{"agent.debug", "", "true"},
		{"agent.nothing", "def", "def"},
		{"agent.missing", "def", "def"},
		{"agent.default_docker", "def", "def"},
	}
	for _, s := range strs {
		if got := c.String(s.path, s.def); got != s.want {
			t.Errorf("String(%q) = %q, want %q", s.path, got, s.want)
		}
	}
	ints := []struct {
		path      string
		def, want int64
	}{
		{"agent.venvs_cache.max_entries", 0, 10},
		{"agent.venvs_cache.free_space_threshold_gb", 0, 2},
		{"agent.venvs_cache.lock_timeout", 0, 30},
		{"agent.missing", 7, 7},
		{"agent.nothing", 7, 7},
	}
	for _, s := range ints {
		if got, err := c.Int(s.path, s.def); err != nil || got != s.want {
			t.Errorf("Int(%q) = %d, %v, want %d", s.path, got, err, s.want)
		}
	}
	floats := []struct {
		path      string
		def, want float64
	}{
		{"agent.task_ping_interval_sec", 0, 2.5},
		{"agent.venvs_cache.max_entries", 0, 10},
		{"agent.venvs_cache.lock_timeout", 0, 30},
		{"agent.missing", 1.5, 1.5},
	}
	for _, s := range floats {
		if got, err := c.Float(s.path, s.def); err != nil || got != s.want {
			t.Errorf("Float(%q) = %v, %v, want %v", s.path, got, err, s.want)
		}
	}
	bools := []struct {
		path      string
		def, want bool
	}{
		{"agent.docker_force_pull", false, true},
		{"agent.crash_on_exception", true, false},
		{"agent.cpu_only", false, true},
		{"agent.debug", false, true},
		{"agent.missing", true, true},
		{"agent.nothing", true, true},
	}
	for _, s := range bools {
		if got, err := c.Bool(s.path, s.def); err != nil || got != s.want {
			t.Errorf("Bool(%q) = %v, %v, want %v", s.path, got, err, s.want)
		}
	}
	lists := []struct {
		path string
		want []string
	}{
		{"agent.extra_index_url", []string{"https://one.example.com"}},
		{"agent.extra_docker_arguments", []string{"--shm-size=8g", "8", "true", "1.5"}},
		{"agent.default_docker.arguments", []string{}},
		{"agent.missing", nil},
	}
	for _, s := range lists {
		if got, err := c.StringList(s.path); err != nil || !reflect.DeepEqual(got, s.want) {
			t.Errorf("StringList(%q) = %#v, %v, want %#v", s.path, got, err, s.want)
		}
	}
}

func TestGetterTypeErrors(t *testing.T) {
	t.Parallel()
	c := getterConfig(t)
	tests := []struct {
		name      string
		call      func() error
		line, col int
		key, msg  string
	}{
		{"int from string", func() error { _, err := c.Int("agent.worker_name", 0); return err }, 3, 18,
			"agent.worker_name", `cannot use string "gpu-01" as an integer`},
		{"int from fraction", func() error { _, err := c.Int("agent.task_ping_interval_sec", 0); return err }, 12, 29,
			"agent.task_ping_interval_sec", "cannot use number 2.5 as an integer"},
		{"float from object", func() error { _, err := c.Float("agent.venvs_cache", 0); return err }, 6, 17,
			"agent.venvs_cache", "cannot use an object as a number"},
		{"bool from word", func() error { _, err := c.Bool("agent.reload_config", false); return err }, 10, 20,
			"agent.reload_config", `cannot use string "maybe" as a boolean`},
		{"list from object", func() error { _, err := c.StringList("agent.default_docker"); return err }, 17, 20,
			"agent.default_docker", "cannot use an object as a list of strings"},
		{"list element", func() error { _, err := c.StringList("agent.bad_list"); return err }, 15, 22,
			"agent.bad_list[1]", "cannot use an object as a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkParseError(t, tt.call(), "clearml.conf", tt.line, tt.col, tt.key, tt.msg)
		})
	}
}

func TestGetterDefaultsOnError(t *testing.T) {
	t.Parallel()
	c := getterConfig(t)
	if got, err := c.Int("agent.worker_name", 42); err == nil || got != 42 {
		t.Errorf("Int on a string = %d, %v; want the default and an error", got, err)
	}
	if got, err := c.Bool("agent.reload_config", true); err == nil || !got {
		t.Errorf("Bool on a bad word = %v, %v; want the default and an error", got, err)
	}
}

func TestAccessors(t *testing.T) {
	t.Parallel()
	c := getterConfig(t)
	if !c.Has("agent.nothing") || c.Has("agent.nope") || c.Has("agent.worker_name.x") {
		t.Error("Has gives wrong answers")
	}
	if got := c.Keys("agent.venvs_cache"); !reflect.DeepEqual(got, []string{"free_space_threshold_gb", "lock_timeout", "max_entries"}) {
		t.Errorf("Keys = %v", got)
	}
	if got := c.Keys(""); !reflect.DeepEqual(got, []string{"agent"}) {
		t.Errorf("Keys(root) = %v", got)
	}
	if got := c.Keys("agent.worker_name"); got != nil {
		t.Errorf("Keys(leaf) = %v, want nil", got)
	}
	obj, ok := c.Object("agent.default_docker")
	if !ok || obj["image"] != "nvidia/cuda" {
		t.Fatalf("Object = %v, %v", obj, ok)
	}
	obj["image"] = "changed"
	if got := c.String("agent.default_docker.image", ""); got != "nvidia/cuda" {
		t.Errorf("modifying the result of Object changed the config: %q", got)
	}
	if _, ok := c.Object("agent.worker_name"); ok {
		t.Error("Object on a string: want false")
	}
	var nilCfg *Config
	if nilCfg.Has("a") || nilCfg.String("a", "d") != "d" || nilCfg.Keys("") != nil {
		t.Error("nil *Config should read as empty")
	}
}

func TestSetAndMerge(t *testing.T) {
	t.Parallel()
	c := getterConfig(t)
	c.Set("agent.worker_name", "override")
	c.Set("agent.venvs_cache.max_entries", 3)
	c.Set("agent.new.deep.key", []string{"a", "b"})
	c.Set("agent.worker_id.sub", true) // replaces a string with an object
	c.Set(`sdk."a.b"`, map[string]int{"x": 1})
	checkValues(t, c, []want{
		{"agent.worker_name", "override"},
		{"agent.venvs_cache.max_entries", int64(3)},
		{"agent.venvs_cache.lock_timeout", "30"},
		{"agent.new.deep.key", []any{"a", "b"}},
		{"agent.worker_id", map[string]any{"sub": true}},
		{`sdk."a.b".x`, int64(1)},
	})
	// A value set programmatically has no origin: errors carry only the key.
	_, err := c.Int("agent.worker_name", 0)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "" || pe.Line != 0 || pe.Key != "agent.worker_name" {
		t.Errorf("error for a Set value = %#v", err)
	}

	over, err := ParseWithEnv("override.conf", []byte(`
agent { venvs_cache { max_entries: 99 }, worker_name: [x] }
api.api_server: "http://other:8008"
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.Merge(over)
	checkValues(t, c, []want{
		{"agent.venvs_cache.max_entries", int64(99)},
		{"agent.venvs_cache.lock_timeout", "30"},
		{"agent.worker_name", []any{"x"}},
		{"api.api_server", "http://other:8008"},
	})
	_, err = c.Int("agent.worker_name", 0)
	if err == nil || !strings.HasPrefix(err.Error(), "override.conf:2:") {
		t.Errorf("error after Merge = %v, want it located in override.conf", err)
	}
	over.Set("agent.venvs_cache.max_entries", 1)
	if got, _ := c.Int("agent.venvs_cache.max_entries", 0); got != 99 {
		t.Errorf("Merge shares state with its argument: %d", got)
	}

	var zero Config
	zero.Set("a.b", 1.5)
	zero.Merge(c)
	if got, _ := zero.Float("a.b", 0); got != 1.5 || zero.String("api.api_server", "") != "http://other:8008" {
		t.Errorf("zero Config after Set and Merge: %v", zero.root)
	}
}

func TestSetNormalizes(t *testing.T) {
	t.Parallel()
	type named string
	var nilPtr *int
	seven := 7
	tests := []struct {
		in   any
		want any
	}{
		{int32(-3), int64(-3)},
		{uint8(200), int64(200)},
		{uint64(1 << 63), float64(1 << 63)},
		{float32(0.5), 0.5},
		{named("x"), "x"},
		{[]byte("raw"), "raw"},
		{[]int{1, 2}, []any{int64(1), int64(2)}},
		{[2]bool{true, false}, []any{true, false}},
		{map[string]string{"k": "v"}, map[string]any{"k": "v"}},
		{map[string][]string{"k": {"v"}}, map[string]any{"k": []any{"v"}}},
		{&seven, int64(7)},
		{nilPtr, nil},
		{struct{ A int }{1}, "{1}"},
		{map[int]string{1: "a"}, "map[1:a]"},
	}
	for _, tt := range tests {
		var c Config
		c.Set("v", tt.in)
		if got, _ := c.Get("v"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Set(%#v) stored %#v, want %#v", tt.in, got, tt.want)
		}
	}
	var c Config
	c.Set("", map[string]any{"a": 1})
	c.Set("", "ignored")
	if got, _ := c.Int("a", 0); got != 1 {
		t.Errorf("Set of the root: a = %d", got)
	}
}

func TestPyFloat(t *testing.T) {
	t.Parallel()
	for f, want := range map[float64]string{2: "2.0", 0.5: "0.5", 3.1: "3.1", 1e20: "1e+20", 1.5e-5: "1.5e-05",
		-7: "-7.0", 0: "0.0", math.Inf(1): "inf", math.Inf(-1): "-inf", math.NaN(): "nan"} {
		if got := FormatFloat(f); got != want {
			t.Errorf("FormatFloat(%v) = %q, want %q", f, got, want)
		}
	}
}
