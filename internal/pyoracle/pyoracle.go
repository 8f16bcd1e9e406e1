// Package pyoracle runs a Python script as a test oracle: the script
// prints "ready", then answers each JSON line on its stdin with one JSON
// line. Fuzz tests compare our parsers with Python's own (shlex, pip's
// requirement reader) through it.
package pyoracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"testing"
)

// Oracle is one running script.
type Oracle struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// Start runs script with python3; it returns nil when python3 is missing
// or the script does not get ready (a module it needs is not installed).
func Start(tb testing.TB, script string) *Oracle {
	tb.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		return nil
	}
	cmd := exec.Command(py, "-c", script)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil
	}
	tb.Cleanup(func() { in.Close(); cmd.Wait() })
	o := &Oracle{in: in, out: bufio.NewReader(out)}
	if line, err := o.out.ReadString('\n'); err != nil || line != "ready\n" {
		return nil
	}
	return o
}

// Ask sends req as one JSON line and decodes the answer into resp.
func (o *Oracle) Ask(tb testing.TB, req, resp any) {
	tb.Helper()
	b, _ := json.Marshal(req)
	if _, err := fmt.Fprintf(o.in, "%s\n", b); err != nil {
		tb.Fatalf("python oracle: %v", err)
	}
	line, err := o.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("python oracle: %v", err)
	}
	if err := json.Unmarshal([]byte(line), resp); err != nil {
		tb.Fatalf("python oracle answer %q: %v", line, err)
	}
}
