package server_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/server"
)

// TestWorkerStats: workers.get_stats aggregates the machine statistics of
// the status reports by interval (avg, min, max; lists of per-core or
// per-GPU values averaged, or split by variant), and forgets reports older
// than a day.
func TestWorkerStats(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t0 := time.Unix(1_700_000_040, 0) // a multiple of 60 s
			clock := &testClock{now: t0}
			c := newTestServer(t, b.open(t), server.Options{Now: clock.Now, TokenTTL: 365 * 24 * time.Hour})
			at := time.Duration(0)
			report := func(after time.Duration, stats map[string]any) {
				clock.Advance(after - at)
				at = after
				c.ok("workers.status_report", map[string]any{"worker": "w1", "timestamp": t0.Add(after).Unix(), "machine_stats": stats})
			}
			report(0, map[string]any{"cpu_usage": []float64{10, 30}, "memory_used": 100})
			report(10*time.Second, map[string]any{"cpu_usage": []float64{50, 70}, "memory_used": 300})
			report(70*time.Second, map[string]any{"cpu_usage": []float64{5, 5}, "memory_used": 200})
			c.ok("workers.status_report", map[string]any{"worker": "w2", "timestamp": t0.Unix()}) // no statistics
			body := map[string]any{"from_date": t0.Unix(), "to_date": t0.Add(2 * time.Minute).Unix(), "interval": 60,
				"items": []map[string]string{{"key": "cpu_usage", "category": "avg"}, {"key": "cpu_usage", "category": "max"},
					{"key": "memory_used", "category": "min"}}}
			got, _ := json.Marshal(c.ok("workers.get_stats", body)["workers"])
			want := `[{"metrics":[{"dates":[1700000040,1700000100],"metric":"cpu_usage","stats":[{"aggregation":"avg","values":[40,5]},` +
				`{"aggregation":"max","values":[70,5]}]},{"dates":[1700000040,1700000100],"metric":"memory_used","stats":[` +
				`{"aggregation":"min","values":[100,200]}]}],"worker":"w1"}]`
			if string(got) != want {
				t.Fatalf("get_stats:\n%s\nwant\n%s", got, want)
			}
			body["split_by_variant"], body["worker_ids"] = true, []string{"w1"}
			body["items"] = []map[string]string{{"key": "cpu_usage", "category": "avg"}}
			got, _ = json.Marshal(c.ok("workers.get_stats", body)["workers"])
			want = `[{"metrics":[{"dates":[1700000040,1700000100],"metric":"cpu_usage","stats":[{"aggregation":"avg","values":[30,5]}],"variant":"0"},` +
				`{"dates":[1700000040,1700000100],"metric":"cpu_usage","stats":[{"aggregation":"avg","values":[50,5]}],"variant":"1"}],"worker":"w1"}]`
			if string(got) != want {
				t.Fatalf("get_stats by variant:\n%s\nwant\n%s", got, want)
			}
			report(25*time.Hour, map[string]any{"cpu_usage": []float64{1}})
			body["to_date"] = t0.Add(26 * time.Hour).Unix()
			body["interval"] = 3600
			got, _ = json.Marshal(c.ok("workers.get_stats", body)["workers"])
			if want := `[{"metrics":[{"dates":[1700089200],"metric":"cpu_usage","stats":[{"aggregation":"avg","values":[1]}],"variant":"0"}],"worker":"w1"}]`; string(got) != want {
				t.Fatalf("after a day:\n%s\nwant\n%s", got, want)
			}
			c.fail("workers.get_stats", map[string]any{"from_date": 0, "to_date": 10, "interval": 60}, 400, 11)
			c.fail("workers.get_stats", map[string]any{"from_date": 0, "to_date": 1e9, "interval": 1, "items": body["items"]}, 400, 12)
		})
	}
}
