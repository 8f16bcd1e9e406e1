package server_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
)

// heldBatch starts an events.add_batch whose body the test feeds by hand,
// so that the request holds its share of the body budget until release is
// called. It returns once the server holds it: until then, a large body
// with a bad last line is answered 400 (admitted, nothing stored); once
// the budget is taken, 503.
func heldBatch(t *testing.T, c *client, body []byte) (release func(), result <-chan exchangeResult) {
	t.Helper()
	pr, pw := io.Pipe()
	req := buildRequest(t, c, "POST", "/events.add_batch", nil, map[string]string{"Content-Type": "application/json-lines"})
	req.Body, req.ContentLength = pr, int64(len(body))
	done := make(chan exchangeResult, 1)
	go func() { done <- httpExchange(t, req) }()
	if _, err := pw.Write(body[:1024]); err != nil {
		t.Fatal(err)
	}
	probe := append(batchBody("probe", len(body)), []byte("{not json\n")...)
	for attempt := 1; ; attempt++ {
		r := httpExchange(t, buildRequest(t, c, "POST", "/events.add_batch", probe, nil))
		assertEnvelope(t, "probe batch", r)
		if r.code == 503 {
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %v", r.header)
			}
			break
		}
		if r.code != 400 || attempt == 50 {
			t.Fatalf("probe batch %d: %d %s, want 400 until the held batch takes the budget, then 503", attempt, r.code, r.env.Meta.ResultMsg)
		}
	}
	return func() {
		pw.Write(body[1024:])
		pw.Close()
	}, done
}

func batchBody(task string, size int) []byte {
	body, _ := logBatch(task, 1700000000000, size)
	return body
}

// TestLargeBodiesWaitTheirTurn: large bodies beyond the body budget wait
// for it; one that waits longer than BodyWait gets a 503 with Retry-After
// (which the clients retry) and stores nothing (heldBatch); a waiting one
// is served when the budget frees up; a chunked body over the limit gets a
// 413, and a bad line at the end of a large body a 400 the client can read;
// neither stores anything.
func TestLargeBodiesWaitTheirTurn(t *testing.T) {
	t.Parallel()
	const size = 2 << 20
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c := newTestServer(t, b.open(t), server.Options{BodyBudget: size, BodyWait: 5 * time.Second, MaxBodyBytes: 8 << 20})
			task := c.createTask("busy task")
			count := func() int {
				return int(c.ok("events.get_task_log", map[string]any{"task": task})["total"].(float64))
			}
			one := batchBody(task, size)
			perBatch := bytes.Count(one, []byte("\n"))

			release, held := heldBatch(t, c, one)
			c.ok("tasks.get_all", map[string]any{"id": []string{task}}) // small bodies do not wait
			queued := make(chan exchangeResult, 1)
			go func() {
				queued <- httpExchange(t, buildRequest(t, c, "POST", "/events.add_batch", one, nil))
			}()
			release()
			for _, ch := range []<-chan exchangeResult{held, queued} {
				if r := <-ch; r.code != 200 {
					t.Fatalf("batch: %d %s", r.code, r.env.Meta.ResultMsg)
				}
			}
			if got := count(); got != 2*perBatch {
				t.Fatalf("%d log events after two batches of %d", got, perBatch)
			}

			chunked := buildRequest(t, c, "POST", "/events.add_batch", nil, map[string]string{"Content-Type": "application/json-lines"})
			chunked.Body, chunked.ContentLength = io.NopCloser(bytes.NewReader(batchBody(task, 9<<20))), -1
			r := httpExchange(t, chunked)
			assertEnvelope(t, "chunked oversized batch", r)
			if r.code != 413 {
				t.Fatalf("chunked batch over the limit: %d %s, want 413", r.code, r.env.Meta.ResultMsg)
			}
			bad := append(batchBody(task, size), []byte("{not json\n")...)
			r = httpExchange(t, buildRequest(t, c, "POST", "/events.add_batch", bad, nil))
			assertEnvelope(t, "batch with a bad last line", r)
			if r.code != 400 || !strings.Contains(r.env.Meta.ResultMsg, "Invalid JSON on line") {
				t.Fatalf("batch with a bad last line: %d %s, want 400", r.code, r.env.Meta.ResultMsg)
			}
			if got := count(); got != 2*perBatch {
				t.Fatalf("refused batches stored %d events", got-2*perBatch)
			}
		})
	}
}
