//go:build !unix

package pgtest

import "syscall"

func sysProcAttr(*account, bool) *syscall.SysProcAttr { return nil }

func (a *account) canTraverse(string) bool { return true }

// processAlive errs on the side of keeping directories.
func processAlive(int) bool { return true }
