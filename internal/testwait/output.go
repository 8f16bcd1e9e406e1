package testwait

import (
	"bytes"
	"sync"
)

// Output collects what a process or goroutine writes (an exec.Cmd's
// Stdout, a logger's writer), for a test to read while it is still being
// written: waiting for a line in a plain bytes.Buffer races with the
// goroutine that copies into it. Its zero value is ready to use.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns what has been written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
