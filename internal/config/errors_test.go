package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/hocon"
)

func TestLoadErrorsAreLocated(t *testing.T) {
	t.Parallel()
	badType, err := os.ReadFile(filepath.Join("testdata", "bad_type.conf"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		content  string
		env      map[string]string
		wantFile string // "" means the home clearml.conf
		wantLine int
		wantKey  string
		wantMsg  string
	}{
		{
			name:     "string where seconds are wanted",
			content:  string(badType),
			wantLine: 4, wantKey: "agent.task_ping_interval_sec",
			wantMsg: `cannot use string "abc" as a number`,
		},
		{
			name:     "object where a string is wanted",
			content:  "agent {\n  worker_id {\n    a: 1\n  }\n}\n",
			wantLine: 2, wantKey: "agent.worker_id",
			wantMsg: "cannot use an object as a string",
		},
		{
			name:     "array where a boolean is wanted",
			content:  "api.verify_certificate: [1]\n",
			wantLine: 1, wantKey: "api.verify_certificate",
			wantMsg: "cannot use an array as a boolean",
		},
		{
			name:     "bad uptime entry",
			content:  "agent {\n  uptime: [\"17-20 SUN\", {x: 1}]\n}\n",
			wantLine: 2, wantKey: "agent.uptime[1]",
			wantMsg: "cannot use an object as a string",
		},
		{
			name:     "syntax error",
			content:  "agent {\n  git_user: \"unterminated\n}\n",
			wantLine: 2, wantKey: "agent.git_user",
			wantMsg: "unterminated string",
		},
		{
			name:     "wrong type from a dynamic override",
			env:      map[string]string{"CLEARML_AGENT__AGENT__TASK_PING_INTERVAL_SEC": "soon"},
			wantFile: "$CLEARML_AGENT__AGENT__TASK_PING_INTERVAL_SEC",
			wantLine: 1, wantKey: "agent.task_ping_interval_sec",
			wantMsg: `cannot use string "soon" as a number`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			path := writeFile(t, home, "clearml.conf", tt.content)
			wantFile := tt.wantFile
			if wantFile == "" {
				wantFile = path
			}
			_, err := Load(testOptions(home, tt.env))
			if err == nil {
				t.Fatal("Load() succeeded")
			}
			var pe *hocon.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Load() error %v (%T) is not a *hocon.ParseError", err, err)
			}
			if pe.File != wantFile || pe.Line != tt.wantLine || pe.Key != tt.wantKey || !strings.Contains(pe.Msg, tt.wantMsg) {
				t.Errorf("error at %s:%d key %q msg %q; want %s:%d key %q msg containing %q",
					pe.File, pe.Line, pe.Key, pe.Msg, wantFile, tt.wantLine, tt.wantKey, tt.wantMsg)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "loading configuration: "+wantFile+":") || !strings.Contains(msg, `key "`+tt.wantKey+`"`) {
				t.Errorf("message %q does not name the file, line and key", msg)
			}
		})
	}
}

func TestEnvironmentSection(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	writeFile(t, home, "clearml.conf", `environment {
    S: text
    I: 42
    ZERO: 0
    F: 2.0
    T: true
    FALSE: false
    NULL: null
    L: [1, "a"]
    "": ignored
}`)
	c := mustLoad(t, testOptions(home, nil))
	want := map[string]string{"S": "text", "I": "42", "ZERO": "", "F": "2.0", "T": "True", "FALSE": "", "NULL": "", "L": `[1,"a"]`}
	if len(c.Agent.Environment) != len(want) {
		t.Errorf("Environment = %v, want %v", c.Agent.Environment, want)
	}
	for k, v := range want {
		if got, ok := c.Agent.Environment[k]; !ok || got != v {
			t.Errorf("Environment[%q] = %q, %v; want %q", k, got, ok, v)
		}
	}

	home = t.TempDir()
	writeFile(t, home, "clearml.conf", `environment: [["A", "1"], ["B", "x"]]`)
	c = mustLoad(t, testOptions(home, nil))
	if got := c.Agent.Environment; len(got) != 2 || got["A"] != "1" || got["B"] != "x" {
		t.Errorf("Environment from pairs = %v", got)
	}

	home = t.TempDir()
	writeFile(t, home, "clearml.conf", `environment: "FOO=bar"`)
	if _, err := Load(testOptions(home, nil)); err == nil || !strings.Contains(err.Error(), `key "environment"`) {
		t.Errorf("Load() error = %v, want one naming the environment key", err)
	}
}

func TestVerifyCertificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		content    string
		wantVerify bool
		wantBundle string
	}{
		{"", true, ""},
		{"api.verify_certificate: false", false, ""},
		{"api.verify_certificate: False", false, ""},
		{`api.verify_certificate: "no"`, false, ""},
		{`api.verify_certificate: "/etc/ssl/corp-ca.pem"`, true, "/etc/ssl/corp-ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.content, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			writeFile(t, home, "clearml.conf", tt.content)
			c := mustLoad(t, testOptions(home, nil))
			if c.API.VerifyCertificate != tt.wantVerify || c.API.CABundle != tt.wantBundle {
				t.Errorf("VerifyCertificate, CABundle = %v, %q; want %v, %q",
					c.API.VerifyCertificate, c.API.CABundle, tt.wantVerify, tt.wantBundle)
			}
		})
	}
}

func TestExpandVars(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "alpha", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for in, want := range map[string]string{
		"$A/x":        "alpha/x",
		"${A}x":       "alphax",
		"$UNSET/x":    "$UNSET/x",
		"${UNSET}":    "${UNSET}",
		"$EMPTY-":     "-",
		"a$":          "a$",
		"$/":          "$/",
		"${A":         "${A",
		"no vars":     "no vars",
		"$A$A":        "alphaalpha",
		"cost: $5.00": "cost: $5.00",
	} {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}
