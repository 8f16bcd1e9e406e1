// Package gcfloor keeps a busy server from collecting garbage more often
// than its memory needs.
//
// Go starts a collection when the heap has grown by GOGC percent (100 by
// default) over what the last one found live, and no sooner than at 4 MiB.
// A server whose live heap is a few MiB, answering many small requests,
// then collects many times a second: each collection wakes threads on every
// processor and sweeps every span, a fixed cost that on a small virtual
// machine cost about a fifth of the server's CPU on the queue path
// (docs/benchmarks.md).
//
// While collections follow each other quickly, Run raises the percent so
// that a collection starts no sooner than at the floor, as long as the live
// heap is small: where the live heap is large enough the percent is the
// configured one, so a large live heap grows no more than without Run. Once
// collections are rare again (a quiet server is collected every two minutes
// by the runtime), the percent goes back and the runtime gives the memory
// back to the system as usual. An operator's GOGC is left alone, and a
// GOMEMLIMIT still bounds the heap.
package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// A collection that comes less than busyGap after the previous one turns the
// floor on; one that comes quietGap or more after it turns the floor off.
// Between the two nothing changes: with the floor on, collections come
// several times less often than without it.
const (
	busyGap  = 250 * time.Millisecond
	quietGap = 10 * time.Second
)

// heapMinimum is the Go runtime's smallest heap goal at GOGC=100. It scales
// with the percent: at GOGC=p the goal is at least heapMinimum*p/100.
const heapMinimum = 4 << 20

const (
	liveMetric   = "/gc/heap/live:bytes"
	cyclesMetric = "/gc/cycles/total:gc-cycles"
)

// tuner is the process's one adjustment in force: a process has one
// garbage collector, so concurrent Runs share it.
var tuner struct {
	mu      sync.Mutex
	users   int
	floor   uint64
	base    int       // the percent before the first Run
	percent int       // the percent last set
	on      bool      // the floor is in force
	last    time.Time // when the previous collection was seen
	armed   bool      // a cleanup waits for the next collection
	// armedAt is how many collections had completed when the cleanup was
	// armed (for tests: while none has completed since, none that found
	// its sentinel is still to be heard of).
	armedAt uint64
	// now and adjusted are for tests: the clock, and a hook told of each
	// collection seen (its gap after the previous one, the live heap) with
	// the percent then set.
	now      func() time.Time
	adjusted func(gap time.Duration, live uint64, percent int)
}

func init() { tuner.now = time.Now }

// Run keeps the floor (bytes) while collections are frequent, until ctx
// ends; it then puts the percent back. It changes nothing when GOGC is set
// in the environment (the operator chose) or the collector is off.
func Run(ctx context.Context, floor uint64) {
	if os.Getenv("GOGC") == "" && start(floor) {
		defer stop()
	}
	<-ctx.Done()
}

func start(floor uint64) bool {
	tuner.mu.Lock()
	defer tuner.mu.Unlock()
	if tuner.users == 0 {
		base := debug.SetGCPercent(100)
		debug.SetGCPercent(base)
		if base < 0 {
			return false
		}
		tuner.base, tuner.percent, tuner.floor, tuner.on = base, base, floor, false
		tuner.last = tuner.now()
		if !tuner.armed {
			arm()
		}
	}
	tuner.users++
	return true
}

func stop() {
	tuner.mu.Lock()
	defer tuner.mu.Unlock()
	if tuner.users--; tuner.users == 0 && tuner.percent != tuner.base {
		debug.SetGCPercent(tuner.base)
		tuner.percent = tuner.base
	}
}

// sentinel is allocated for each collection: its cleanup runs once a
// collection has found it unreachable. It holds a pointer so that it is
// not put in the allocator's tiny blocks, whose cleanups may never run.
type sentinel struct {
	p *byte
	_ [8]byte
}

// arm waits for the next collection. Callers hold tuner.mu.
func arm() {
	tuner.armed = true
	tuner.armedAt = readUint64(cyclesMetric)
	runtime.AddCleanup(new(sentinel), afterGC, 0)
}

// afterGC runs on the runtime's cleanup goroutine after a collection.
func afterGC(int) {
	tuner.mu.Lock()
	defer tuner.mu.Unlock()
	tuner.armed = false
	if tuner.users == 0 {
		return
	}
	now := tuner.now()
	gap := now.Sub(tuner.last)
	tuner.on = floorOn(tuner.on, gap)
	tuner.last = now
	live := liveHeap()
	p := tuner.base
	if tuner.on {
		p = percentFor(live, tuner.floor, tuner.base)
	}
	if p != tuner.percent {
		debug.SetGCPercent(p)
		tuner.percent = p
	}
	// Armed before anyone hears of this collection: one who then collects
	// at once (the tests) has a sentinel for that collection to find.
	arm()
	if tuner.adjusted != nil {
		tuner.adjusted(gap, live, p)
	}
}

// floorOn says whether the floor is in force after a collection that came
// gap after the previous one, given whether it was before.
func floorOn(on bool, gap time.Duration) bool {
	switch {
	case gap < busyGap:
		return true
	case gap >= quietGap:
		return false
	}
	return on
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 { return readUint64(liveMetric) }

// readUint64 reads one of the runtime's metrics (0 when it has none).
func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// percentFor is the percent that puts the heap goal at floor for a live
// heap of live bytes, or base where base already puts it higher. It is at
// most the percent whose minimum goal is the floor: at a tiny live heap
// that minimum is the goal.
func percentFor(live, floor uint64, base int) int {
	most := int(floor * 100 / heapMinimum)
	if most <= base {
		return base
	}
	if live == 0 {
		return most
	}
	if live+live*uint64(base)/100 >= floor {
		return base
	}
	p := int((floor - live) * 100 / live)
	return min(max(p, base), most)
}
