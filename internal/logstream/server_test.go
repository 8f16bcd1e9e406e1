package logstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
	"github.com/goclearml/agent/internal/testwait"
)

// liveServer is our API server over real HTTP on a SQLite store. It can be
// stopped and started again on the same address with the same store.
type liveServer struct {
	t     *testing.T
	st    store.Store
	addr  string
	creds server.Credentials
	mu    sync.Mutex
	hs    *httptest.Server
}

func newLiveServer(t *testing.T) *liveServer {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "clearml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := server.Bootstrap(ctx, st); err != nil {
		t.Fatal(err)
	}
	creds, err := server.CreateCredentials(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	ls := &liveServer{t: t, st: st, creds: creds}
	ls.start("127.0.0.1:0")
	t.Cleanup(ls.stop)
	return ls
}

func (ls *liveServer) start(addr string) {
	ls.t.Helper()
	srv, err := server.New(ls.st, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		ls.t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		ls.t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = l
	hs.Start()
	ls.mu.Lock()
	ls.hs, ls.addr = hs, l.Addr().String()
	ls.mu.Unlock()
}

func (ls *liveServer) stop() {
	ls.mu.Lock()
	hs := ls.hs
	ls.mu.Unlock()
	hs.Close()
}

func (ls *liveServer) url() string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return "http://" + ls.addr
}

// httpSender is a minimal client: auth.login with Basic auth, then
// events.add_batch as JSON lines with the token.
type httpSender struct {
	ls     *liveServer
	client http.Client
	mu     sync.Mutex
	token  string
}

var _ Sender = (*httpSender)(nil)

func (h *httpSender) call(ctx context.Context, endpoint, ctype string, body []byte, out any) error {
	h.mu.Lock()
	token := h.token
	h.mu.Unlock()
	if token == "" && endpoint != "auth.login" {
		var login api.LoginResponse
		if err := h.call(ctx, "auth.login", "", nil, &login); err != nil {
			return err
		}
		h.mu.Lock()
		h.token, token = login.Token, login.Token
		h.mu.Unlock()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.ls.url()+"/"+endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if endpoint == "auth.login" {
		req.SetBasicAuth(h.ls.creds.AccessKey, h.ls.creds.SecretKey)
	} else {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env api.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s: %d: %s", endpoint, resp.StatusCode, raw)
	}
	if env.Meta.ResultCode != http.StatusOK {
		if env.Meta.ResultCode == http.StatusUnauthorized {
			h.mu.Lock()
			h.token = ""
			h.mu.Unlock()
		}
		return &api.Error{Code: env.Meta.ResultCode, Subcode: env.Meta.ResultSubcode, Msg: env.Meta.ResultMsg}
	}
	return json.Unmarshal(env.Data, out)
}

func (h *httpSender) AddEvents(ctx context.Context, lines [][]byte) (int, error) {
	var resp api.AddBatchResponse
	err := h.call(ctx, "events.add_batch", "application/json-lines", bytes.Join(lines, []byte("\n")), &resp)
	return resp.Added, err
}

func (h *httpSender) createTask(t *testing.T) string {
	t.Helper()
	var resp struct{ ID string }
	body := `{"name": "logstream", "type": "training", "script": {"entry_point": "train.py"}}`
	if err := h.call(t.Context(), "tasks.create", "application/json", []byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	return resp.ID
}

// taskLog reads the whole log, oldest first, following from_timestamp.
func (h *httpSender) taskLog(t *testing.T, task string) []event {
	t.Helper()
	var out []event
	var from *int64
	for {
		req := map[string]any{"task": task, "navigate_earlier": false, "batch_size": 500}
		if from != nil {
			req["from_timestamp"] = *from
		}
		body, _ := json.Marshal(req)
		var resp struct{ Events []event }
		if err := h.call(t.Context(), "events.get_task_log", "application/json", body, &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Events) == 0 {
			return out
		}
		out = append(out, resp.Events...)
		last := resp.Events[len(resp.Events)-1].Timestamp
		from = &last
	}
}

func TestRealServerOrderingAndFormat(t *testing.T) {
	t.Parallel()
	ls := newLiveServer(t)
	h := &httpSender{ls: ls}
	cfg := testConfig(t)
	cfg.TaskID = h.createTask(t)
	cfg.Secrets = []string{"s3cr3t"}
	ss := start(t, cfg, h)
	lines := numbered("line ", 10000)
	for i, l := range lines {
		switch i % 1000 {
		case 1:
			l += " token=s3cr3t" // masked
		case 2:
			l = "50%\r" + l // progress redraw: only the last segment stays
		}
		ss.Write([]byte(l + "\n"))
	}
	ss.Log("DEBUG", "Process completed successfully\n")
	ss.finish(t)

	evs := h.taskLog(t, cfg.TaskID)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	want := strings.Join(lines, "\n") + "\n"
	// Lines printed after a "50%\r" redraw arrive as themselves.
	for i := 1; i < len(lines); i += 1000 {
		want = strings.Replace(want, lines[i]+"\n", lines[i]+" token=********\n", 1)
	}
	want += "Process completed successfully\n"
	if got := text(evs); got != want {
		t.Fatalf("server log differs: %d bytes, want %d", len(got), len(want))
	}
	if strings.Contains(text(evs), "s3cr3t") {
		t.Error("secret reached the server")
	}
}

func TestRealServerOutage(t *testing.T) {
	t.Parallel()
	ls := newLiveServer(t)
	h := &httpSender{ls: ls}
	cfg := testConfig(t)
	cfg.TaskID = h.createTask(t)
	cfg.RetryBackoff = func(int) time.Duration { return 20 * time.Millisecond }
	ss := start(t, cfg, h)
	lines := numbered("outage ", 3000)
	for i, l := range lines {
		switch i {
		case 1000:
			ls.stop() // the server goes away while the task keeps printing
		case 2000:
			// A send failed: the lines since the outage began are pending.
			testwait.Until(t, failSafe, func() bool { return ss.Stats().Retries > 0 }, "a failed send")
			ls.start(strings.TrimPrefix(ls.url(), "http://")) // same address, same database
		}
		ss.Write([]byte(l + "\n"))
	}
	ss.finish(t)
	evs := h.taskLog(t, cfg.TaskID)
	checkEvents(t, evs, cfg.TaskID, cfg.Worker)
	if got, want := text(evs), strings.Join(lines, "\n")+"\n"; got != want {
		t.Fatalf("server log differs after the outage: %d bytes, want %d", len(got), len(want))
	}
	if s := ss.Stats(); s.Retries == 0 || s.Dropped != 0 || s.FailedSends != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestRealServerUnknownTaskSkipped(t *testing.T) {
	t.Parallel()
	ls := newLiveServer(t)
	h := &httpSender{ls: ls}
	cfg := testConfig(t)
	cfg.TaskID = "0123456789abcdef0123456789abcdef" // no such task: 400/131
	ss := start(t, cfg, h)
	ss.Write([]byte("nobody reads this\n"))
	ss.finish(t)
	if s := ss.Stats(); s.FailedSends != 1 || s.Rejected != 1 || s.Pending != 0 {
		t.Errorf("stats %+v", s)
	}
}
