package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/api"
	"github.com/goclearml/agent/internal/pgtest"
	"github.com/goclearml/agent/internal/testbin"
)

// memStatus is a process's memory as /proc/PID/status reports it, in bytes.
type memStatus struct {
	RSS, Peak int64 // VmRSS and VmHWM
	// Anon and File split the resident set: the heap (and SQLite's page
	// cache) against mapped files (SQLite maps its database).
	Anon, File int64
}

// procMemory reads a process's memory from /proc/PID/status.
func procMemory(pid int) (memStatus, error) {
	var m memStatus
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		p := fields[key]
		if !ok || p == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("reading %s: %w", key, err)
		}
		*p = kb << 10
	}
	if m.RSS == 0 || m.Peak == 0 {
		return m, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

const mib = 1 << 20

// scalarBatch returns a JSON-lines events.add_batch body of about size
// bytes of scalar events (about 200 bytes each), and their count.
func scalarBatch(task string, size int) ([]byte, int) {
	var b bytes.Buffer
	b.Grow(size + 4096)
	n := 0
	for b.Len() < size {
		fmt.Fprintf(&b, `{"type": "training_stats_scalar", "task": "%s", "timestamp": %d, "iter": %d, "metric": "loss", "variant": "v%d", "value": %d.5, "worker": "bench-host"}`+"\n",
			task, 1700000000000+int64(n), n/8, n%8, n)
		n++
	}
	return b.Bytes(), n
}

// logBatch returns a JSON-lines events.add_batch body of about size bytes:
// log events of the task, each with a 2 KB message and its own timestamp
// from base on, and their count.
func logBatch(task string, base int64, size int) ([]byte, int) {
	msg := strings.Repeat("console output line of a busy training run; ", 46) // ~2 KB
	var b bytes.Buffer
	b.Grow(size + 4096)
	n := 0
	for b.Len() < size {
		fmt.Fprintf(&b, `{"type": "log", "task": "%s", "timestamp": %d, "level": "info", "worker": "bench-host", "msg": "%d %s"}`+"\n",
			task, base+int64(n), n, msg)
		n++
	}
	return b.Bytes(), n
}

// postBatch sends one add_batch as the SDK does (POST, JSON lines) and
// retries while the server answers 503, as the SDK does too.
func postBatch(pc *procClient, body []byte) (api.AddBatchResponse, error) {
	var out api.AddBatchResponse
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest("POST", pc.url+"/events.add_batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+pc.token)
		req.Header.Set("Content-Type", "application/json-lines")
		resp, err := pc.http.Do(req)
		if err != nil {
			return out, err
		}
		var env api.Envelope
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil {
			return out, fmt.Errorf("decoding add_batch answer: %w", err)
		}
		if env.Meta.ResultCode == http.StatusServiceUnavailable && attempt < 100 {
			time.Sleep(500 * time.Millisecond) // the client's back-off before a retry, as the SDK's
			continue
		}
		if env.Meta.ResultCode != 200 {
			return out, fmt.Errorf("add_batch: %d/%d %s", env.Meta.ResultCode, env.Meta.ResultSubcode, env.Meta.ResultMsg)
		}
		return out, json.Unmarshal(env.Data, &out)
	}
}

// batchLoad is the result of parallelBatches.
type batchLoad struct {
	// before is the server's memory after one small batch; after, right
	// after the last answer.
	before, after memStatus
	elapsed       time.Duration
}

// parallelBatches sends n add_batch bodies of size bytes at once, each for
// its own task, to a server process and measures its memory before and
// after; then it calls check, and then checks that every event was stored
// exactly once (reading them all back).
//
// kind is "log" (2 KB log lines; the check reads them all back) or
// "scalar" (200-byte scalar events; the check trusts the answers' counts).
func parallelBatches(t testing.TB, s *testbin.Server, kind string, n, size int, check func(batchLoad)) batchLoad {
	t.Helper()
	pc := newProcClient(t, s)
	tasks := make([]string, n)
	bodies := make([][]byte, n)
	counts := make([]int, n)
	for i := range tasks {
		var created api.IDResponse
		if err := pc.call("tasks.create", map[string]any{"name": fmt.Sprintf("log heavy %d", i), "type": "training"}, &created); err != nil {
			t.Fatal(err)
		}
		tasks[i] = created.ID
		if kind == "scalar" {
			bodies[i], counts[i] = scalarBatch(created.ID, size)
		} else {
			bodies[i], counts[i] = logBatch(created.ID, 1700000000000, size)
		}
	}
	warm, warmEvents := logBatch(tasks[0], 1600000000000, 64<<10)
	if _, err := postBatch(pc, warm); err != nil {
		t.Fatal(err)
	}
	var load batchLoad
	var err error
	if load.before, err = procMemory(s.Pid()); err != nil {
		t.Skipf("needs /proc to measure the server's memory: %v", err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range bodies {
		wg.Go(func() {
			res, err := postBatch(pc, bodies[i])
			if err == nil && (res.Added != counts[i] || res.Errors != 0) {
				err = fmt.Errorf("batch %d: added %d, errors %d; want %d, 0", i, res.Added, res.Errors, counts[i])
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	load.elapsed = time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if load.after, err = procMemory(s.Pid()); err != nil {
		t.Fatal(err)
	}
	check(load)
	if kind == "scalar" {
		return load
	}
	for i, task := range tasks {
		want := counts[i]
		if i == 0 {
			want += warmEvents
		}
		if got := countLogEvents(t, pc, task); got != want {
			t.Fatalf("task %d has %d log events, want %d", i, got, want)
		}
	}
	return load
}

// countLogEvents pages through a task's log, oldest first, and returns
// how many events it has; the batches' timestamps are distinct, so a
// duplicate shows as a timestamp seen twice.
func countLogEvents(t testing.TB, pc *procClient, task string) int {
	t.Helper()
	n := 0
	last := int64(-1)
	for {
		body := map[string]any{"task": task, "batch_size": 5000, "navigate_earlier": false}
		if last >= 0 {
			body["from_timestamp"] = last
		}
		var page struct {
			Events []struct{ Timestamp int64 }
		}
		if err := pc.call("events.get_task_log", body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			return n
		}
		for _, e := range page.Events {
			if e.Timestamp <= last {
				t.Fatalf("task %s: log timestamp %d after %d", task, e.Timestamp, last)
			}
			last = e.Timestamp
			n++
		}
	}
}

// BenchmarkAddBatchMemory sends six ~27 MiB events.add_batch bodies (2 KB
// log lines) at once to a server process and reports its memory, as growth
// over the resident set before: peak-MiB (VmHWM), after-MiB (VmRSS right
// after the answers), settled-MiB (VmRSS 5 s later), and of that last one
// the anonymous part (heap and SQLite's page cache; the rest is the mapped
// database file).
//
// The scalar/ variants send 200-byte scalar events instead (about 140,000
// per body), where decoding costs most memory per byte.
func BenchmarkAddBatchMemory(b *testing.B) {
	for _, run := range []struct{ kind, backend string }{{"log", "sqlite"}, {"log", "postgres"}, {"scalar", "sqlite"}, {"scalar", "postgres"}} {
		b.Run(run.kind+"/"+run.backend, func(b *testing.B) {
			backend := run.backend
			var peak, after, settled, anon, secs float64
			for range b.N {
				s, _ := benchServer(b, backend)
				var later memStatus
				l := parallelBatches(b, s, run.kind, 6, 27*mib, func(batchLoad) {
					time.Sleep(5 * time.Second)
					var err error
					if later, err = procMemory(s.Pid()); err != nil {
						b.Fatal(err)
					}
				})
				peak += float64(l.after.Peak-l.before.RSS) / mib
				after += float64(l.after.RSS-l.before.RSS) / mib
				settled += float64(later.RSS-l.before.RSS) / mib
				anon += float64(later.Anon-l.before.Anon) / mib
				secs += l.elapsed.Seconds()
				b.Logf("before %+v MiB\nafter %+v MiB\n5 s later %+v MiB\n%.1f s", mibs(l.before), mibs(l.after), mibs(later), l.elapsed.Seconds())
			}
			b.ReportMetric(peak/float64(b.N), "peak-MiB")
			b.ReportMetric(after/float64(b.N), "after-MiB")
			b.ReportMetric(settled/float64(b.N), "settled-MiB")
			b.ReportMetric(anon/float64(b.N), "settled-anon-MiB")
			b.ReportMetric(secs/float64(b.N), "s/6-batches")
		})
	}
}

func mibs(m memStatus) memStatus {
	return memStatus{RSS: m.RSS / mib, Peak: m.Peak / mib, Anon: m.Anon / mib, File: m.File / mib}
}

// TestAddBatchMemoryBound sends six ~27 MiB events.add_batch bodies at once
// to a server process and checks that its memory stays bounded and is
// given back: before, the server grew by 870 MiB with these bodies (2.3 GiB
// with scalar events) and kept most of it. Every event is stored exactly
// once. The exact figures are BenchmarkAddBatchMemory's; the bounds here
// are generous but far below the old growth.
func TestAddBatchMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("long: sends 160 MiB of events to server processes")
	}
	t.Parallel()
	const (
		maxPeakGrowth = 350 * mib // growth of the peak resident set
		maxLeft       = 64 * mib  // heap left once the batches are done
	)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var extra []string
			if backend == "postgres" {
				extra = []string{"--db", pgtest.NewDatabase(t)}
			}
			s := testbin.StartServer(t, t.TempDir(), extra...)
			parallelBatches(t, s, "log", 6, 27*mib, func(l batchLoad) {
				t.Logf("before %+v MiB, after %+v MiB, %.1f s", mibs(l.before), mibs(l.after), l.elapsed.Seconds())
				if g := l.after.Peak - l.before.RSS; g > maxPeakGrowth {
					t.Errorf("peak resident set grew by %d MiB, want at most %d", g/mib, maxPeakGrowth/mib)
				}
				// The heap (anonymous memory) goes back near where it was.
				eventually(t, 2*time.Minute, func() bool {
					now, err := procMemory(s.Pid())
					return err == nil && now.Anon-l.before.Anon <= maxLeft
				}, fmt.Sprintf("the server's heap to shrink back to at most %d MiB over before", maxLeft/mib))
			})
		})
	}
}
