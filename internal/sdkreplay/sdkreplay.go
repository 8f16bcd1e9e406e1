// Package sdkreplay is, for tests, a Python replica of what the ClearML
// Python SDK (clearml 2.1.x) sends to the server for its Datasets, its
// PipelineController and its HyperParameterOptimizer, read from the SDK's
// source: the SDK itself cannot be installed where our tests run. The
// replica uses only Python's standard library and reads its server and
// credentials from the environment, as the SDK does, so it runs both on a
// test's machine and as a task that our daemon executes.
package sdkreplay

import (
	_ "embed"
	"os/exec"
	"strings"
	"testing"
)

var (
	//go:embed replay_task.py
	taskPy string
	//go:embed replay_flows.py
	flowsPy string
	//go:embed replay_automation.py
	automationPy string
)

// Script is a standalone Python program: the replica, then main, which
// uses it (Session, Task, Dataset, PipelineController,
// HyperParameterOptimizer). It is what a task's script.diff holds when the
// SDK runs a single file outside a repository.
func Script(main string) string {
	return strings.Join([]string{taskPy, flowsPy, automationPy, "# --- the program ---", main}, "\n")
}

// Env is the environment that points the replica (and the real SDK) at a
// server.
func Env(apiHost, filesHost, accessKey, secretKey string) []string {
	return []string{"CLEARML_API_HOST=" + apiHost, "CLEARML_FILES_HOST=" + filesHost,
		"CLEARML_API_ACCESS_KEY=" + accessKey, "CLEARML_API_SECRET_KEY=" + secretKey}
}

// Python returns the python3 to run the replica with, or skips the test,
// naming what is missing.
func Python(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the SDK replay needs it")
	}
	return p
}
