package testbin

import (
	"os/exec"
	"strings"
	"testing"
)

// WriteScript writes an executable file (mode 0755) at path with body, for
// a test to have the code under test run it.
//
// It is written by a child process, not by this one: while this process
// holds a file open for writing, a process another test forks meanwhile
// inherits that descriptor until its own exec, and running the file then
// fails with "text file busy" (ETXTBSY, golang.org/issue/22315). A child's
// descriptors are never inherited by this process's other children.
func WriteScript(t testing.TB, path, body string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `cat > "$1" && chmod 755 "$1"`, "sh", path)
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing the script %s: %v: %s", path, err, out)
	}
}
