package agent

import (
	"bytes"
	"sync"
)

// DaemonReportsEnv is set in a task process's environment when a daemon
// runs it: `execute` then leaves the final status to the daemon, which
// sends it once the whole log is delivered, so whoever sees the status
// also sees every line. Without it (a bare execute) execute reports itself.
const DaemonReportsEnv = "CLEARML_AGENT_DAEMON_REPORTS"

// SetupFailurePrefix starts the line with which `execute` says why a task
// could not start (its environment could not be built, say); the rest of
// the line is the reason the daemon reports.
func SetupFailurePrefix(taskID string) string {
	return "clearml-agent: cannot run task " + taskID + ": "
}

// setupCatcher watches a task's output for the setup-failure line.
type setupCatcher struct {
	prefix []byte
	mu     sync.Mutex
	line   []byte // the current partial line, when it may be the one
	start  bool   // the next byte starts a line
	reason string
}

// maxReason bounds what is kept of a line that may carry the reason.
const maxReason = 4096

func (c *setupCatcher) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if c.start || c.line != nil {
			if c.line == nil {
				c.line = []byte{}
			}
			if len(c.line) < maxReason {
				c.line = append(c.line, chunk[:min(len(chunk), maxReason-len(c.line))]...)
			}
			if !bytes.HasPrefix(c.line, c.prefix[:min(len(c.line), len(c.prefix))]) {
				c.line = nil // not the line
			}
		}
		c.start = false
		if i < 0 {
			break
		}
		if c.line != nil && bytes.HasPrefix(c.line, c.prefix) {
			c.reason = string(bytes.TrimSpace(c.line[len(c.prefix):]))
		}
		c.line, c.start = nil, true
		p = p[i+1:]
	}
	return n, nil
}

// Reason is the reason the task's process gave for not starting ("" when
// it gave none).
func (c *setupCatcher) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func newSetupCatcher(taskID string) *setupCatcher {
	return &setupCatcher{prefix: []byte(SetupFailurePrefix(taskID)), start: true}
}
