package taskprep

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotebookToScript(t *testing.T) {
	t.Parallel()
	nb := `{"cells": [
 {"cell_type": "markdown", "source": ["# Title\n"]},
 {"cell_type": "code", "source": ["x = 6\n", "%matplotlib inline\n", "print(x * 7)\n"]},
 {"cell_type": "code", "source": "!pip install foo\nprint('done')"}
], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}`
	path := filepath.Join(t.TempDir(), "nb.ipynb")
	os.WriteFile(path, []byte(nb), 0o644)
	script, skipped, err := notebookToScript(path)
	if err != nil || skipped != 2 || strings.Contains(script, "# Title") {
		t.Fatalf("script %q skipped %d err %v", script, skipped, err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: conversion checked, not run")
	}
	out, err := exec.Command(py, "-c", script).CombinedOutput()
	if err != nil || string(out) != "42\ndone\n" {
		t.Fatalf("converted notebook ran: %v %q", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.ipynb")
	os.WriteFile(bad, []byte("not json"), 0o644)
	if _, _, err := notebookToScript(bad); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("bad notebook: %v", err)
	}
}
