// Package containerinit is the first process of a task's container: the
// agent's own binary, mounted read-only, started as the container's entry
// point. It runs the container set-up script (git and Python detection,
// apt packages, the agent's and the task's shell scripts), keeps the
// environment that script exported, then runs the task (`clearml-agent
// execute`). As PID 1 it forwards the stop signal docker sends to the
// task's process group, reaps orphans, and when the task ends stops every
// process left in the container, so that nothing outlives the task.
package containerinit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/executor"
)

// Options is one container start.
type Options struct {
	// Script is the set-up script's path (empty: none, as with
	// --standalone-mode).
	Script string
	// Argv is the task command (the agent's execute).
	Argv []string
	// Stdout receives the set-up's and the task's combined output.
	Stdout io.Writer
}

// envFileName is where the set-up shell leaves its environment.
const envFileName = "/tmp/.clearml-agent-setup.env"

// DumpEnv writes this process's environment, NUL-separated, to path: the
// set-up script's last step, so that its exports reach the task.
func DumpEnv(path string) error {
	return os.WriteFile(path, []byte(strings.Join(os.Environ(), "\x00")), 0o600)
}

// Run runs the set-up script and then the task, and returns the exit
// status the container should end with.
func Run(o Options) int {
	out := o.Stdout
	if out == nil {
		out = os.Stdout
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	env := os.Environ()
	if o.Script != "" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(out, "clearml-agent: container set-up: %v\n", err)
			return 1
		}
		shell := "sh"
		if _, err := exec.LookPath("bash"); err == nil {
			shell = "bash"
		}
		os.Remove(envFileName)
		script := fmt.Sprintf(". %s\nexec %s container-env %s\n", o.Script, self, envFileName)
		status, stopped := supervise([]string{shell, "-c", script}, env, out, sigs)
		if stopped {
			return status
		}
		data, err := os.ReadFile(envFileName)
		if err != nil {
			fmt.Fprintf(out, "clearml-agent: the container set-up script exited (status %d) before the task could start\n", status)
			if status == 0 {
				status = 1
			}
			return status
		}
		os.Remove(envFileName)
		env = strings.Split(string(data), "\x00")
	}
	status, _ := supervise(o.Argv, env, out, sigs)
	return status
}

// supervise runs argv in its own process group, forwards signals to the
// group, reaps every child (as PID 1 orphans are ours), and when argv's
// process has ended stops what it left behind. It returns argv's exit
// status (128+N for a signal) and whether a stop signal arrived.
func supervise(argv, env []string, out io.Writer, sigs <-chan os.Signal) (int, bool) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(out, "clearml-agent: %v\n", err)
		return 127, false
	}
	files := []*os.File{os.Stdin, os.Stdout, os.Stdout}
	if f, ok := out.(*os.File); ok {
		files = []*os.File{os.Stdin, f, f}
	}
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{Env: env, Files: files, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		fmt.Fprintf(out, "clearml-agent: starting %s: %v\n", argv[0], err)
		return 127, false
	}
	pid := proc.Pid
	reaped := make(chan int, 1)
	go func() { reaped <- reapUntil(pid) }()
	stopped := false
	for {
		select {
		case status := <-reaped:
			cleanupGroup(pid)
			return status, stopped
		case s := <-sigs:
			sig := s.(syscall.Signal)
			if sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT {
				stopped = true
			}
			syscall.Kill(-pid, sig)
		}
	}
}

// reapUntil reaps children until pid has exited and returns its exit
// status (128+N for a signal).
func reapUntil(pid int) int {
	ws := executor.ReapUntil(pid)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// cleanupGroup stops what the command left: its process group, and as the
// container's PID 1 every other process of the container; SIGTERM, then
// SIGKILL after two seconds.
func cleanupGroup(pgid int) {
	pid1 := os.Getpid() == 1
	signalAll := func(sig syscall.Signal) bool {
		alive := syscall.Kill(-pgid, sig) == nil
		if pid1 && syscall.Kill(-1, sig) == nil {
			alive = true
		}
		return alive
	}
	if !signalAll(syscall.SIGTERM) {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		executor.ReapAll()
		if !others(pgid, pid1) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	signalAll(syscall.SIGKILL)
	executor.ReapAll()
}

// others reports whether processes other than this one remain (in the
// group, or in the whole container when pid1).
func others(pgid int, pid1 bool) bool {
	if !pid1 {
		return syscall.Kill(-pgid, 0) == nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := []byte(fmt.Sprint(os.Getpid()))
	for _, e := range entries {
		name := []byte(e.Name())
		if len(name) == 0 || name[0] < '0' || name[0] > '9' || bytes.Equal(name, self) {
			continue
		}
		return true
	}
	return false
}
