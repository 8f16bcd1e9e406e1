package agent_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/apiclient"
	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// holdingProxy forwards TCP connections to a server and, like a reverse
// proxy or a connection left half-open, keeps the server side of each open
// when its client goes away. What the server sends to a client that is
// gone is kept in lost.
type holdingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   bytes.Buffer // everything clients sent
	lost   bytes.Buffer // what the server sent after its client had gone
	conns  []net.Conn
	wg     sync.WaitGroup
	// hold, when set, holds back client data that contains it until
	// release is closed; held counts the chunks held.
	hold    string
	release chan struct{}
	held    int
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln, target: target, release: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		p.releaseHeld()
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// releaseHeld lets held client data through.
func (p *holdingProxy) releaseHeld() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *holdingProxy) heldCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

func (p *holdingProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *holdingProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		var gone sync.Once
		clientGone := make(chan struct{})
		p.wg.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					p.mu.Lock()
					p.sent.Write(buf[:n])
					hold := p.hold != "" && bytes.Contains(buf[:n], []byte(p.hold))
					if hold {
						p.held++
					}
					p.mu.Unlock()
					if hold {
						<-p.release
					}
					server.Write(buf[:n])
				}
				if err != nil {
					gone.Do(func() { close(clientGone) })
					return // the server side stays open
				}
			}
		})
		p.wg.Go(func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 {
					select {
					case <-clientGone:
						p.mu.Lock()
						p.lost.Write(buf[:n])
						p.mu.Unlock()
					default:
						if _, werr := client.Write(buf[:n]); werr != nil {
							p.mu.Lock()
							p.lost.Write(buf[:n])
							p.mu.Unlock()
						}
					}
				}
				if err != nil {
					client.Close()
					return
				}
			}
		})
	}
}

// daemonVia starts a daemon on the default queue that reaches the server
// through the proxy.
func daemonVia(e *env, p *holdingProxy) *testbin.Process {
	e.t.Helper()
	return testbin.Start(e.t, append(e.daemonEnv(), "CLEARML_API_HOST="+p.URL()),
		"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--queue", "default")
}

func (p *holdingProxy) seen(which *bytes.Buffer, s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Contains(which.String(), s)
}

// A daemon stopped during its long poll, behind a proxy that keeps the
// server side of the connection open: the server hands the next task to
// the poll nobody reads any more. With leases the task goes back to its
// queue after --lease-timeout, and the next daemon runs it.
func TestHandOutLostBehindProxyRunsElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--lease-timeout", "2s")
	proxy := startHoldingProxy(t, e.listen)
	first := daemonVia(e, proxy)
	if !testwait.For(60*time.Second, func() bool { return proxy.seen(&proxy.sent, `"wait_ms"`) }) {
		t.Fatalf("the daemon never long-polled through the proxy:\n%s", first.Output())
	}
	first.Signal(syscall.SIGTERM)
	if code := first.Wait(60 * time.Second); code != 0 {
		t.Fatalf("the daemon exited %d:\n%s", code, first.Output())
	}
	id := e.shTask("handed to nobody", "", "echo ran here\n")
	if !testwait.For(60*time.Second, func() bool { return proxy.seen(&proxy.lost, id) }) {
		t.Fatalf("the server did not hand the task to the stopped daemon's poll (the proxy saw no answer naming it)")
	}
	// Without the lease it would stay here for ever: queued, in no queue.
	if tk := e.get(id); tk.Status != api.StatusQueued {
		t.Fatalf("task = %s after the lost hand-out", tk.Status)
	}
	start := time.Now()
	second := e.daemon("--queue", "default")
	if tk := e.waitStatus(id, 90*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, second.Output())
	}
	t.Logf("lost hand-out ran on the next daemon %v after it started (lease 2 s)", time.Since(start).Round(10*time.Millisecond))
	log := strings.Join(e.logLines(id), "\n")
	if !strings.Contains(log, "not started within 2s") || !strings.Contains(log, "ran here") {
		t.Fatalf("task log:\n%s", log)
	}
}

// A worker that takes a task and dies before it starts it (a daemon
// killed between the pop and tasks.started): the task goes back to its
// queue and a daemon runs it. The dead worker's late acknowledgement is
// refused, so the task runs once.
func TestHandOutNeverStartedRunsOnceElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--lease-timeout", "2s")
	ctx := context.Background()
	queue := e.queueID("default")
	id := e.shTask("taken by a dying worker", "", "echo ran once\n")
	entry, err := e.api.GetNextTask(ctx, queue, 0)
	if err != nil || entry == nil || entry.Task != id || entry.Lease == "" {
		t.Fatalf("GetNextTask = %+v, %v", entry, err)
	}
	d := e.daemon("--queue", "default")
	if tk := e.waitStatus(id, 90*time.Second, "completed", "failed"); tk.Status != "completed" {
		t.Fatalf("task = %s %q\n%s", tk.Status, tk.StatusReason, d.Output())
	}
	err = e.api.Started(ctx, id, "pulled by agent", entry.Lease, apiclient.Default)
	if !api.ErrLeaseLost.Is(err) {
		t.Fatalf("late acknowledgement = %v, want it refused (lease lost)", err)
	}
	if n := strings.Count(strings.Join(e.logLines(id), "\n"), "ran once"); n != 1 {
		t.Fatalf("the task ran %d times", n)
	}
}

// A slow worker: the daemon's acknowledgement (its tasks.started) reaches
// the server only after its lease ran out and another worker took the
// task. The server refuses it, and the daemon leaves the task alone.
func TestSlowAcknowledgementIsRefusedAndTheDaemonLetsGo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--lease-timeout", "2s")
	ctx := context.Background()
	queue := e.queueID("default")
	proxy := startHoldingProxy(t, e.listen)
	proxy.mu.Lock()
	proxy.hold = "/tasks.started"
	proxy.mu.Unlock()
	slow := daemonVia(e, proxy)
	id := e.shTask("acknowledged too late", "", "echo ran by the slow daemon\n")
	if !testwait.For(60*time.Second, func() bool { return proxy.heldCount() > 0 }) {
		t.Fatalf("the daemon never sent tasks.started:\n%s", slow.Output())
	}
	// The lease runs out; the task is back in its queue and another
	// worker takes and starts it.
	var entry *api.QueueEntry
	if !testwait.For(60*time.Second, func() bool {
		var err error
		entry, err = e.api.GetNextTask(ctx, queue, 0)
		return err == nil && entry != nil
	}) {
		t.Fatal("the task never came back to its queue")
	}
	if entry.Task != id {
		t.Fatalf("got %s, want %s", entry.Task, id)
	}
	if err := e.api.Started(ctx, id, "taken over", entry.Lease, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	proxy.releaseHeld()
	slow.WaitOutput(t, "skipping task: its hand-out expired", 60*time.Second)
	if tk := e.get(id); tk.Status != api.StatusInProgress || tk.StatusMessage != "taken over" {
		t.Fatalf("task = %s %q, want in_progress by the other worker", tk.Status, tk.StatusMessage)
	}
	if log := strings.Join(e.logLines(id), "\n"); strings.Contains(log, "ran by the slow daemon") {
		t.Fatalf("the slow daemon ran the task:\n%s", log)
	}
}
