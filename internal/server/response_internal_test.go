package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/goclearml/agent/internal/api"
)

// TestWriteResponseIsTheEnvelope: the answer written around the encoded
// data is byte for byte the api.Envelope the clients decode, with its
// length announced, small or large, success or error.
func TestWriteResponseIsTheEnvelope(t *testing.T) {
	t.Parallel()
	large := map[string]any{"tasks": func() []map[string]any {
		var ts []map[string]any
		for i := range 2000 {
			ts = append(ts, map[string]any{"id": strconv.Itoa(i), "name": "<task> & \"quotes\" \u2028", "status": "queued"})
		}
		return ts
	}()}
	cases := []struct {
		name     string
		data     any
		err      error
		code     int
		wantData string // "" = not checked beyond the envelope
	}{
		{"no data", nil, nil, 200, "{}"},
		{"small", map[string]any{"queued": 1, "html": "<b>&</b>"}, nil, 200, ""},
		{"large", large, nil, 200, ""},
		{"not an object", []int{1, 2}, nil, 200, "{}"},
		{"api error", nil, api.ErrInvalidTaskID.New("", "id", "x"), 400, "{}"},
		{"other error", nil, errors.New("boom"), 500, "{}"},
		{"data that cannot be encoded", map[string]any{"f": func() {}}, nil, 500, "{}"},
		{"error data that cannot be encoded", nil, &api.Error{Code: 400, Msg: "bad", Data: map[string]any{"f": func() {}}}, 500, "{}"},
	}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/tasks.get_all", nil)
		n := s.writeResponse(rec, req, &call{ctx: context.Background(), endpoint: "tasks.get_all", version: "2.23"}, c.data, c.err)
		got := rec.Body.Bytes()
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d", c.name, rec.Code, c.code)
		}
		if n != len(got) || rec.Header().Get("Content-Length") != strconv.Itoa(len(got)) {
			t.Errorf("%s: returned %d, Content-Length %q, body %d bytes", c.name, n, rec.Header().Get("Content-Length"), len(got))
		}
		var env api.Envelope
		if err := json.Unmarshal(got, &env); err != nil {
			t.Errorf("%s: the answer is not an envelope: %v", c.name, err)
			continue
		}
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: answer differs from its envelope encoded whole:\n got %.300s\nwant %.300s", c.name, got, want)
		}
		if env.Meta.ResultCode != c.code || env.Meta.Endpoint.Name != "tasks.get_all" || env.Meta.ID == "" {
			t.Errorf("%s: meta %+v", c.name, env.Meta)
		}
		if c.wantData != "" && string(env.Data) != c.wantData {
			t.Errorf("%s: data %.100s, want %s", c.name, env.Data, c.wantData)
		}
		if c.err == nil && c.code == 200 && c.wantData == "" {
			if d, _ := json.Marshal(c.data); !bytes.Equal(env.Data, d) {
				t.Errorf("%s: data %.100s, want %.100s", c.name, env.Data, d)
			}
		}
		if strings.Contains(c.name, "large") && len(got) < 100_000 {
			t.Errorf("large answer only %d bytes", len(got))
		}
	}
}

// countingWriter is a ResponseWriter that keeps only the answer's size, as
// the connection's buffer costs no allocation per answer.
type countingWriter struct {
	h    http.Header
	n    int
	code int
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(code int)        { w.code = code }
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkWriteResponse: an answer of 2,000 tasks (about 400 kB) and a
// small one, encoded and written.
func BenchmarkWriteResponse(b *testing.B) {
	tasks := make([]api.Task, 2000)
	for i := range tasks {
		tasks[i] = api.Task{ID: strconv.Itoa(i), Name: "a task with a name", Status: "queued", Project: "p", Type: "training"}
	}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	c := &call{ctx: context.Background(), endpoint: "tasks.get_all", version: "2.23"}
	req := httptest.NewRequest("POST", "/tasks.get_all", nil)
	for _, bc := range []struct {
		name string
		data any
	}{{"large", map[string]any{"tasks": tasks}}, {"small", map[string]any{"queued": 1, "updated": 1}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			w := &countingWriter{h: http.Header{}}
			for b.Loop() {
				s.writeResponse(w, req, c, bc.data, nil)
			}
		})
	}
}
