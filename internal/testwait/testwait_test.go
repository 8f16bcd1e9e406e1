package testwait

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestPollBacksOffUntilTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		ok := poll(20*time.Millisecond, time.Millisecond, 5*time.Millisecond, func() bool {
			at = append(at, time.Since(start))
			return false
		})
		// At once, then after 1, 2, 4, 5 and 5 ms, and at the deadline.
		want := []time.Duration{0, 1, 3, 7, 12, 17, 20}
		if ok || len(at) != len(want) {
			t.Fatalf("poll = %v, checks at %v, want false after checks at %v ms", ok, at, want)
		}
		for i := range want {
			if at[i] != want[i]*time.Millisecond {
				t.Fatalf("checks at %v, want %v ms", at, want)
			}
		}
	})
}

func TestPollReturnsWhenTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		time.AfterFunc(50*time.Millisecond, func() { close(done) }) // the bubble's fake clock
		start := time.Now()
		ok := poll(time.Hour, time.Millisecond, 10*time.Millisecond, func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
		if took := time.Since(start); !ok || took < 50*time.Millisecond || took > 60*time.Millisecond {
			t.Fatalf("poll = %v after %v, want true within one interval of the change", ok, took)
		}
	})
}

func TestUntilPassesAndEveryFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		Until(t, time.Second, func() bool { return true }, "nothing")
		var ft fakeT
		Every(&ft, time.Millisecond, 10*time.Millisecond, func() bool { return false }, "the impossible")
		if ft.msg != "timed out after 10ms waiting for the impossible" {
			t.Fatalf("failure message %q", ft.msg)
		}
	})
}

// fakeT records Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}
