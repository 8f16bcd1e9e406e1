package httpguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCrossSite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, method, host string
		hdr                map[string]string
		refused            bool
	}{
		{"no browser headers (SDK, agent, curl)", "POST", "127.0.0.1:8008", map[string]string{"Content-Type": "text/plain"}, false},
		{"text/plain from another origin", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, true},
		{"charset does not matter", "POST", "127.0.0.1:8008", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain; charset=utf-8"}, true},
		{"a form", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, true},
		{"a multipart form", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://evil.example", "Content-Type": "multipart/form-data; boundary=x"}, true},
		{"no content type", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://evil.example"}, true},
		{"origin null (sandboxed page)", "POST", "127.0.0.1:8008", map[string]string{"Origin": "null", "Content-Type": "text/plain"}, true},
		{"another port is another origin", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://127.0.0.1:8080", "Content-Type": "text/plain"}, true},
		{"same origin", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://127.0.0.1:8008", "Content-Type": "text/plain"}, false},
		{"same origin, default port", "POST", "ui.example", map[string]string{"Origin": "http://ui.example", "Content-Type": "text/plain"}, false},
		{"preflighted JSON", "POST", "127.0.0.1:8008", map[string]string{"Origin": "http://ui.example", "Content-Type": "application/json"}, false},
		{"PUT needs a preflight", "PUT", "127.0.0.1:8008", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, false},
		{"img tag", "GET", "127.0.0.1:8008", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, true},
		{"link followed", "GET", "127.0.0.1:8008", map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}, true},
		{"a cors fetch", "GET", "127.0.0.1:8008", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, false},
		{"the page itself", "GET", "127.0.0.1:8008", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors"}, false},
		{"typed in the address bar", "GET", "127.0.0.1:8008", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://"+c.host+"/tasks.create", nil)
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		if why := CrossSite(r); (why != "") != c.refused {
			t.Errorf("%s: CrossSite = %q, want refused=%v", c.name, why, c.refused)
		}
	}
}

// One client address holds at most max connections; the next is closed
// at once, and a freed place is given to the next one.
func TestLimitPerClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const max = 3
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(LimitPerClient(ln, max))
	t.Cleanup(func() { srv.Close() })
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	var held []net.Conn
	for i := range max {
		c := dial()
		if err := get(c); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	if err := get(dial()); err == nil {
		t.Fatalf("connection %d was served, want closed", max+1)
	}
	held[0].Close()
	// The place is free once the server saw the close: a new connection
	// is served then.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := get(dial())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed: %v", err)
		}
	}
}

// A body that stops arriving fails with ErrTooSlow once its grace and
// its rate are used up; one that keeps the rate is read whole.
func TestMinRate(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		MinRate(w, r, 64<<10, 200*time.Millisecond)
		_, err := io.Copy(io.Discard, r.Body)
		got <- err
	}))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 1 MiB announced, 10 bytes sent, then nothing.
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n0123456789", 1<<20)
	select {
	case err := <-got:
		if !errors.Is(err, ErrTooSlow) {
			t.Fatalf("stalled body: %v, want ErrTooSlow", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled body was waited for 30 s")
	}
	// A body sent whole passes.
	resp, err := http.Post(srv.URL, "application/octet-stream", io.LimitReader(zeros{}, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err != nil {
		t.Fatalf("a body sent at full speed: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
