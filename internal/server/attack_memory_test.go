package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/goclearml/agent/internal/testbin"
)

// The memory attacks of issue 18 against a server process: request bodies
// of dense "{}" items, which a generic JSON decoder turns into tens of
// bytes of heap per byte of body.

// denseBody is about size bytes of {"x": [[{}, {}, ...], [{}, ...], ...]}:
// lists of 50,000 items, under the server's limit on list lengths.
func denseBody(size int) []byte {
	const perList = 50_000
	var b bytes.Buffer
	b.Grow(size + 16)
	b.WriteString(`{"x":[`)
	for first := true; b.Len() < size; first = false {
		if !first {
			b.WriteString(",")
		}
		n := min(perList, max((size-b.Len())/3, 1))
		b.WriteString("[")
		b.WriteString(strings.Repeat("{},", n-1))
		b.WriteString("{}]")
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// parameterBody is about size bytes of hyper-parameter objects.
func parameterBody(size int) []byte {
	const item = `{"section":"Args","name":"learning_rate","value":"0.001","type":"float","description":"the step size"}`
	var b bytes.Buffer
	b.Grow(size + 256)
	b.WriteString(`{"x":[`)
	for i := 0; b.Len() < size; i++ {
		switch {
		case i > 0 && i%50_000 == 0:
			fmt.Fprintf(&b, `],"y%d":[`, i)
		case i > 0:
			b.WriteString(",")
		}
		b.WriteString(item)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// memoryAttack is one attack: count bodies of size bytes sent at once to
// endpoint, signed in or not.
type memoryAttack struct {
	name     string
	endpoint string
	signedIn bool
	count    int
	size     int
}

var memoryAttacks = []memoryAttack{
	{"unauthenticated debug.ping, 2 x 31 MiB", "debug.ping", false, 2, 31 * mib},
	{"unauthenticated debug.ping, 128 x 0.77 MiB", "debug.ping", false, 128, 790 << 10},
	{"signed in tasks.get_all, 2 x 31 MiB", "tasks.get_all", true, 2, 31 * mib},
}

// resetPeak resets a process's peak resident set (VmHWM), so that the
// next reading is the peak since now.
func resetPeak(t testing.TB, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skipf("needs /proc/PID/clear_refs to measure the server's peak memory: %v", err)
	}
}

// run sends the attack and returns the growth of the server's peak
// resident set over its resident set before, and the HTTP statuses seen.
func (a memoryAttack) run(t testing.TB, s *testbin.Server, pc *procClient) (int64, map[int]int) {
	t.Helper()
	body := denseBody(a.size)
	if a == servedLoad {
		body = parameterBody(a.size)
	}
	resetPeak(t, s.Pid())
	before, err := procMemory(s.Pid())
	if err != nil {
		t.Skipf("needs /proc to measure the server's memory: %v", err)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range a.count {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.URL+"/"+a.endpoint, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if a.signedIn {
				req.Header.Set("Authorization", "Bearer "+pc.token)
			}
			code := -1
			if resp, err := pc.http.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	after, err := procMemory(s.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return after.Peak - before.RSS, codes
}

// TestMemoryAttacksBounded: each attack of issue 18 leaves the server's
// peak memory within a small bound. Before, they took it to 2.16 GiB,
// 3.13 GiB and 1.88 GiB.
func TestMemoryAttacksBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("long: sends 200 MiB of request bodies to a server process")
	}
	t.Parallel()
	const bound = 200 * mib
	s := testbin.StartServer(t, t.TempDir())
	pc := newProcClient(t, s)
	for _, a := range memoryAttacks {
		growth, codes := a.run(t, s, pc)
		t.Logf("%s: peak grew by %d MiB; answers %v", a.name, growth/mib, codes)
		if growth > bound {
			t.Errorf("%s: the server's peak memory grew by %d MiB, want at most %d", a.name, growth/mib, bound/mib)
		}
		if codes[200] > 0 && a.endpoint != "debug.ping" {
			t.Errorf("%s: %d dense bodies were served", a.name, codes[200])
		}
	}
}

// servedLoad is not an attack: bodies of ordinary values (hyper-parameter
// objects) that the server decodes and serves, to show what an accepted
// body of the largest size costs.
var servedLoad = memoryAttack{"signed in tasks.get_all, 2 x 31 MiB of parameter objects (served)", "tasks.get_all", true, 2, 31 * mib}

// BenchmarkMemoryAttacks reports the growth of the server's peak resident
// set under each attack of issue 18 (docs/benchmarks.md), each against a
// fresh server process.
func BenchmarkMemoryAttacks(b *testing.B) {
	for _, a := range append(append([]memoryAttack{}, memoryAttacks...), servedLoad) {
		b.Run(strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "").Replace(a.name), func(b *testing.B) {
			var peak float64
			for range b.N {
				s := testbin.StartServer(b, b.TempDir())
				growth, codes := a.run(b, s, newProcClient(b, s))
				peak += float64(growth) / mib
				b.Logf("answers %v", codes)
				s.Stop()
			}
			b.ReportMetric(peak/float64(b.N), "peak-growth-MiB")
		})
	}
}
