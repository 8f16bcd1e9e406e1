package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

// slowClient is a raw connection that sends a request's headers and then
// as much of its body as the test says: the test drives it.
type slowClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialSlow(t *testing.T, url, path, token string, length int) *slowClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json-lines\r\nContent-Length: %d\r\n", path, length)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n{"); err != nil {
		t.Fatal(err)
	}
	return &slowClient{conn: conn, r: bufio.NewReader(conn)}
}

// answer waits (at most d) for the server's answer, or for it to close
// the connection: the status code, or 0 when it closed without one.
func (c *slowClient) answer(t *testing.T, d time.Duration) int {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the server kept a stalled request for over %v", d)
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Slow clients cannot hold the body budget: a client that is not signed
// in takes none (it is answered 401 at once, without its body), and a
// signed-in client that sends its body slower than the minimum rate loses
// its connection. Before, two connections declaring large bodies and
// trickling bytes held the whole budget, and a real add_batch got 503.
func TestSlowClientsDoNotHoldTheBudget(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "clearml.db"))
	srv, err := server.New(st, slog.New(slog.DiscardHandler), server.Options{
		BodyBudget: 4 << 20, BodyWait: 20 * time.Second,
		BodyMinRate: 256 << 10, BodyRateGrace: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c := clientFor(t, hs.URL, st)
	task := c.createTask("slow clients")

	// Not signed in: answered at once, no budget taken.
	anon := []*slowClient{dialSlow(t, hs.URL, "/tasks.get_all", "", 3<<20), dialSlow(t, hs.URL, "/events.add_batch", "", 3<<20)}
	for _, a := range anon {
		if code := a.answer(t, 10*time.Second); code != http.StatusUnauthorized {
			t.Errorf("a request without credentials got %d, want 401 before its body", code)
		}
	}
	// Signed in but stalled: dropped once under the minimum rate.
	stalled := []*slowClient{dialSlow(t, hs.URL, "/events.add_batch", c.token, 3<<20), dialSlow(t, hs.URL, "/events.add_batch", c.token, 3<<20)}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- postLogBatch(hs.URL, c.token, task, 2<<20) }()
	for _, s := range stalled {
		if code := s.answer(t, 15*time.Second); code != 0 && code != http.StatusRequestTimeout {
			t.Errorf("a stalled body got %d, want 408 or a closed connection", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("a real 2 MiB add_batch behind stalled clients: %v (after %v)", err, time.Since(start))
	}
}

// postLogBatch sends about size bytes of log events in one add_batch.
func postLogBatch(url, token, task string, size int) error {
	body, n := logBatch(task, 1700000000000, size)
	req, _ := http.NewRequest("POST", url+"/events.add_batch", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), fmt.Sprintf(`"added":%d`, n)) {
		return fmt.Errorf("add_batch: %d %s", resp.StatusCode, raw)
	}
	return nil
}

// clientFor signs in to the server at url, over st, as its admin.
func clientFor(t *testing.T, url string, st store.Store) *client {
	t.Helper()
	creds, err := server.CreateCredentials(context.Background(), st, "")
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ts: &testServer{URL: url, Store: st, Creds: creds}}
	c.login()
	return c
}
