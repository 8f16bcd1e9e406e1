package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/goclearml/agent/internal/agent"
	"github.com/goclearml/agent/internal/args"
)

// daemonSignature summarises the arguments that identify a daemon, so that
// `--stop` with the same arguments finds exactly that daemon.
func daemonSignature(g args.Global, d *args.Daemon) string {
	qs := make([]string, len(d.Queues))
	for i, q := range d.Queues {
		qs[i] = strings.ToLower(q)
	}
	return fmt.Sprintf("queues=%q gpus=%q cpu-only=%v config=%q", qs, d.GPUs, d.CPUOnly, g.ConfigFile)
}

// stopDaemons implements --stop [WORKER_ID ...] (spec 2.12): with ids,
// each daemon with exactly that id; without, the daemon started with the
// same arguments (same computed id, or same name and slot-style id and the
// same queue/GPU arguments), never another one. The daemon aborts its
// running task, which it reports stopped ("agent shutdown"). Exit status 0
// when every stop succeeded, else 1.
func stopDaemons(g args.Global, d *args.Daemon, workerName, workerID string, visible string, visibleSet bool, stdout io.Writer) error {
	running := agent.Running("")
	sort.Slice(running, func(i, j int) bool { return running[i].WorkerID < running[j].WorkerID })
	var targets []agent.RunningInstance
	failed := false
	if len(*d.Stop) > 0 {
		for _, id := range *d.Stop {
			found := false
			for _, r := range running {
				if r.WorkerID == id {
					targets, found = append(targets, r), true
					break
				}
			}
			if !found {
				fmt.Fprintf(stdout, "Could not find a running clearml-agent instance with worker_id=%s\n", id)
				failed = true
			}
		}
	} else {
		name, id := agent.ComputeName(agent.IdentityOptions{WorkerID: workerID, WorkerName: workerName,
			VisibleGPUs: visible, VisibleGPUsSet: visibleSet, DynamicGPUs: d.DynamicGPUs})
		slotID := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `:\d+$`)
		sig := daemonSignature(g, d)
		found := false
		for _, r := range running {
			idMatch := r.WorkerID == id || (id == "" && slotID.MatchString(r.WorkerID))
			if idMatch && (r.Signature == "" || r.Signature == sig) {
				targets, found = append(targets, r), true
				break
			}
		}
		if !found {
			fmt.Fprintf(stdout, "Could not find a running clearml-agent instance with worker_name=%s worker_id=%s\n", name, id)
			failed = true
		}
	}
	for _, r := range targets {
		fmt.Fprintf(stdout, "Terminating clearml-agent worker_id=%s pid=%d\n", r.WorkerID, r.PID)
		if err := terminate(r.PID, 10*time.Second, 60*time.Second); err != nil {
			fmt.Fprintf(stdout, "Could not stop worker_id=%s pid=%d: %v\n", r.WorkerID, r.PID, err)
			failed = true
		}
	}
	if failed {
		return &exitError{code: 1, err: fmt.Errorf("not every daemon could be stopped")}
	}
	return nil
}

// terminate asks a daemon to stop its task and exit: two SIGTERMs (drain,
// then abort the running task with its grace period), then SIGKILL after
// timeout. The second SIGTERM waits until the daemon has taken the first
// (it marks its instance draining), for up to ack: a signal sent while the
// same one is still pending is lost, and on a busy machine a daemon can
// take longer than any fixed pause to receive the first.
func terminate(pid int, ack, timeout time.Duration) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	gone := func() bool { return syscall.Kill(pid, 0) != nil }
	waitUntil(ack, func() bool { return gone() || draining(pid) })
	p.Signal(syscall.SIGTERM)
	if waitUntil(timeout, gone) {
		return nil
	}
	p.Signal(syscall.SIGKILL)
	return fmt.Errorf("did not exit within %v: killed", timeout)
}

// draining reports whether the daemon with pid marked itself draining.
func draining(pid int) bool {
	for _, r := range agent.Running("") {
		if r.PID == pid {
			return r.Draining
		}
	}
	return false
}

// waitUntil checks cond every 50 ms for up to d and says whether it held.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// detachedChildEnv marks the background copy of a --detached daemon.
const detachedChildEnv = "CLEARML_AGENT_DETACHED_CHILD"

// detach starts this same command line again in its own session, with its
// output in logPath, and returns its pid: the caller prints it and exits.
// The git password, if given with --git-pass, reaches the background copy
// through its environment, never its command line.
func detach(logPath, gitPass string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening daemon log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	cmd := exec.Command(self, withoutOption(os.Args[1:], "--git-pass")...)
	cmd.Env = append(os.Environ(), detachedChildEnv+"="+logPath)
	if gitPass != "" {
		cmd.Env = append(cmd.Env, "CLEARML_AGENT_GIT_PASS="+gitPass)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the background daemon: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return pid, nil
}
