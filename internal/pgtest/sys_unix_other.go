//go:build unix && !linux

package pgtest

import "syscall"

// setDeathSignal does nothing: only Linux can tie a child's life to its
// parent's. Call Stop (or Cleanup from TestMain) to stop the server.
func setDeathSignal(*syscall.SysProcAttr) {}
