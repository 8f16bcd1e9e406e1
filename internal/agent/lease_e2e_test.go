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
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
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
					p.mu.Unlock()
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
	args := []string{"--config-file", e.srv.ConfigPath, "daemon", "--foreground", "--queue", "default"}
	first := testbin.Start(t, append(e.daemonEnv(), "CLEARML_API_HOST="+proxy.URL()), args...)
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
	var q struct{ ID string }
	if err := e.api.Call(ctx, "", "queues.get_default", nil, &q, apiclient.Default); err != nil {
		t.Fatal(err)
	}
	id := e.shTask("taken by a dying worker", "", "echo ran once\n")
	entry, err := e.api.GetNextTask(ctx, q.ID, 0)
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
