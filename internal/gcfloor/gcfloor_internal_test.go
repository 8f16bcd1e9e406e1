package gcfloor

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	cases := []struct {
		name        string
		live, floor uint64
		base, want  int
	}{
		{"tiny live heap: the minimum goal is the floor", 1 * mib, 32 * mib, 100, 800},
		{"no live heap", 0, 32 * mib, 100, 800},
		{"goal at the floor", 8 * mib, 32 * mib, 100, 300},
		{"base already reaches the floor", 16 * mib, 32 * mib, 100, 100},
		{"large live heap", 512 * mib, 32 * mib, 100, 100},
		{"just under half the floor", 15 * mib, 32 * mib, 100, 113},
		{"a higher base stays", 4 * mib, 32 * mib, 300, 700},
		{"a base above what the floor needs", 2 * mib, 32 * mib, 1000, 1000},
		{"a floor under the runtime's minimum", 1 * mib, 2 * mib, 100, 100},
	}
	for _, c := range cases {
		if got := percentFor(c.live, c.floor, c.base); got != c.want {
			t.Errorf("%s: percentFor(%d MiB, %d MiB, %d) = %d, want %d", c.name, c.live/mib, c.floor/mib, c.base, got, c.want)
		}
	}
}

func TestFloorOn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		on   bool
		gap  time.Duration
		want bool
	}{
		{false, 10 * time.Millisecond, true},
		{false, busyGap, false},
		{false, 5 * time.Second, false},
		{true, 5 * time.Second, true},
		{true, quietGap - time.Millisecond, true},
		{true, quietGap, false},
		{true, time.Hour, false},
		{true, 0, true},
	}
	for _, c := range cases {
		if got := floorOn(c.on, c.gap); got != c.want {
			t.Errorf("floorOn(%v, %v) = %v, want %v", c.on, c.gap, got, c.want)
		}
	}
}

// gcPercent reads the collector's percent without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

type event struct {
	gap     time.Duration
	live    uint64
	percent int
}

// TestFollowsCollections runs real collections under a test clock: frequent
// ones with a small live heap raise the percent to the floor's, a rare one
// puts it back, a large live heap keeps the configured percent, and the end
// of the last user restores it. Collections the runtime starts on its own
// see no time pass while the clock stands (it moves only in collectAfter,
// once they have all been heard of), so each step waits for the collection
// whose gap is the one it set.
func TestFollowsCollections(t *testing.T) {
	base := gcPercent()
	if base < 0 {
		t.Skip("the collector is off (GOGC=off)")
	}
	var mu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	events := make(chan event, 64)
	tuner.mu.Lock()
	tuner.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tuner.adjusted = func(gap time.Duration, live uint64, percent int) {
		select {
		case events <- event{gap, live, percent}:
		default:
		}
	}
	tuner.mu.Unlock()
	t.Cleanup(func() {
		tuner.mu.Lock()
		tuner.now, tuner.adjusted = time.Now, nil
		tuner.mu.Unlock()
	})
	const floor = 64 << 20
	if !start(floor) {
		t.Fatal("start: the collector is off")
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// quiet returns once every collection that found the sentinel has been
	// heard of: the sentinel is armed and no collection completed since.
	// Else one did, and either its cleanup is still to run, or the
	// sentinel was made during it and outlived it: a collection now makes
	// sure that a cleanup runs, and its event is waited for.
	quiet := func() {
		t.Helper()
		timeout := time.After(time.Minute)
		for {
			tuner.mu.Lock()
			done := tuner.armed && readUint64(cyclesMetric) == tuner.armedAt
			tuner.mu.Unlock()
			if done {
				return
			}
			runtime.GC()
			select {
			case <-events:
			case <-timeout:
				t.Fatal("the collections were not all heard of within a minute")
			}
		}
	}
	// collectAfter moves the clock by gap and collects; the first
	// collection heard of after that is the one with the gap. quiet first:
	// a collection the runtime made before (while a large heap was being
	// made, say) must not be the one heard of with the gap.
	collectAfter := func(gap time.Duration) event {
		t.Helper()
		quiet()
		mu.Lock()
		clock = clock.Add(gap)
		mu.Unlock()
		runtime.GC()
		timeout := time.After(time.Minute)
		for {
			select {
			case e := <-events:
				if e.gap == gap {
					return e
				}
			case <-timeout:
				t.Fatalf("no collection seen %v after the last one", gap)
			}
		}
	}

	e := collectAfter(10 * time.Millisecond)
	if want := percentFor(e.live, floor, base); e.percent != want || want <= base {
		t.Fatalf("frequent collections, live heap %d: percent %d, want %d (over %d)", e.live, e.percent, want, base)
	}
	if got := gcPercent(); got <= base {
		t.Fatalf("the collector's percent is %d, want over %d", got, base)
	}
	if e = collectAfter(5 * time.Second); e.percent <= base {
		t.Fatalf("between busy and quiet: percent %d, want the floor's (over %d) kept", e.percent, base)
	}
	if e = collectAfter(quietGap + time.Second); e.percent != base {
		t.Fatalf("after a quiet spell: percent %d, want %d", e.percent, base)
	}
	// A live heap over the floor: the configured percent, busy or not.
	big := make([][]byte, 0, 96)
	for range cap(big) {
		big = append(big, make([]byte, 1<<20))
	}
	if e = collectAfter(20 * time.Millisecond); e.percent != base || e.live < floor {
		t.Fatalf("live heap %d MiB over the floor: percent %d, want %d", e.live>>20, e.percent, base)
	}
	runtime.KeepAlive(big)
	big = nil
	e = collectAfter(30 * time.Millisecond)
	if e.percent <= base {
		t.Fatalf("the large heap gone (live %d MiB): percent %d, want over %d", e.live>>20, e.percent, base)
	}
	stop()
	stopped = true
	if got := gcPercent(); got != base {
		t.Fatalf("after the last user stopped: percent %d, want %d", got, base)
	}
}
