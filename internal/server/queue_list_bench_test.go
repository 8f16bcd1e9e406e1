package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/server"
	"github.com/goclearml/agent/internal/store"
)

// BenchmarkQueuesGetAllManyQueued measures queues.get_all on a queue
// holding 100,000 entries: with the projection a daemon uses on every
// pass (id and tags), and the whole document with every entry. Report:
// ms per call.
func BenchmarkQueuesGetAllManyQueued(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			dsn := filepath.Join(b.TempDir(), "clearml.db")
			if backend == "postgres" {
				dsn = pgtest.NewDatabase(b)
			}
			st := openStore(b, dsn)
			srv, err := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Options{})
			if err != nil {
				b.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			b.Cleanup(hs.Close)
			creds, err := server.CreateCredentials(context.Background(), st, "")
			if err != nil {
				b.Fatal(err)
			}
			call := func(endpoint string, body any, out any) {
				raw, _ := json.Marshal(body)
				req, _ := http.NewRequest("GET", hs.URL+"/"+endpoint, bytes.NewReader(raw))
				req.SetBasicAuth(creds.AccessKey, creds.SecretKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				var env api.Envelope
				if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Meta.ResultCode != 200 {
					b.Fatalf("%s: %v %s", endpoint, err, env.Meta.ResultMsg)
				}
				if out != nil {
					json.Unmarshal(env.Data, out)
				}
			}
			var q api.IDResponse
			call("queues.create", map[string]any{"name": "deep"}, &q)
			const queued = 100000
			now := api.Time{Time: time.Now().UTC()}
			err = st.Update(context.Background(), func(tx store.Tx) error {
				for i := range queued {
					if _, err := tx.AddEntry(q.ID, fmt.Sprintf("%032x", i), now); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for _, v := range []struct {
				name string
				body map[string]any
			}{
				{"tags-only", map[string]any{"id": []string{q.ID}, "only_fields": []string{"id", "tags"}}},
				{"whole", map[string]any{"id": []string{q.ID}}},
			} {
				b.Run(v.name, func(b *testing.B) {
					start := time.Now()
					for range b.N {
						call("queues.get_all", v.body, nil)
					}
					b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/call")
				})
			}
		})
	}
}
