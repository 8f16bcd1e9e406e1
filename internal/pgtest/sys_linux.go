package pgtest

import "syscall"

// setDeathSignal makes the kernel SIGKILL the child when the test binary
// dies, so that a crashed or killed test run leaves no server behind. (The
// postmaster's own children notice its death and exit.) Go applies it after
// switching credentials, so it survives running as the postgres user.
func setDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}
