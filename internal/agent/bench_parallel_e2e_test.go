package agent_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goclearml/agent/internal/testbin"
	"github.com/goclearml/agent/internal/testwait"
)

// procUsage reads a process's resident memory (KiB) and CPU time.
func procUsage(b *testing.B, pid int) (rssKiB int64, cpu time.Duration) {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rssKiB, time.Duration(ut+st) * 10 * time.Millisecond
}

// BenchmarkServicesMode50 measures the daemon (not its tasks) while it
// supervises 50 services-mode tasks at once: resident memory, and CPU over
// 20 s of steady state (abort checks, pings, status reports of 51
// workers, log streaming of a line per task every second).
func BenchmarkServicesMode50(b *testing.B) {
	for range b.N {
		e := newEnv(b)
		d := testbin.Start(b, e.daemonEnv(), "--config-file", e.srv.ConfigPath, "daemon", "--queue", "default",
			"--services-mode", "--polling-interval", "0.5")
		var ids []string
		for i := range 50 {
			ids = append(ids, e.shTask(fmt.Sprintf("svc %d", i), "", "echo started\nwhile true; do echo tick; sleep 1; done\n"))
		}
		for _, id := range ids {
			e.waitStatusB(b, id, "in_progress")
		}
		// The measurement: 3 s for the start-up work to pass, then the
		// CPU the daemon uses in 20 s of steady state.
		time.Sleep(3 * time.Second)
		rss0, cpu0 := procUsage(b, d.Pid())
		time.Sleep(20 * time.Second)
		rss1, cpu1 := procUsage(b, d.Pid())
		b.ReportMetric(float64(max(rss0, rss1))/1024, "daemon-rss-MiB")
		b.ReportMetric((cpu1-cpu0).Seconds()/20, "daemon-cores")
		d.Signal(os.Interrupt)
		d.Signal(os.Interrupt)
		d.Wait(60 * time.Second)
	}
}

func (e *env) waitStatusB(b *testing.B, id, want string) {
	testwait.Until(b, 2*time.Minute, func() bool { return e.get(id).Status == want }, "task "+id+" to be "+want)
}
