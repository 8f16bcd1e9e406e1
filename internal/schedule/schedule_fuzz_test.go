package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzZones are the locations the schedule is evaluated in: UTC, zones
// with daylight saving changes (including a half-hour one) where the
// system has time zone data.
func fuzzZones() []*time.Location {
	zones := []*time.Location{time.UTC}
	for _, name := range []string{"America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"} {
		if loc, err := time.LoadLocation(name); err == nil {
			zones = append(zones, loc)
		}
	}
	return zones
}

// FuzzSchedule builds a schedule from uptime or downtime specs (the
// input split at NUL bytes; a first byte 'd' means downtime) and checks,
// at an instant taken from the input, that Decide agrees with Active,
// that force tags win, that Next is a real change of state within the
// horizon, and that Report renders.
func FuzzSchedule(f *testing.F) {
	for _, seed := range []struct {
		specs string
		unix  int64
		zone  uint8
	}{
		{"u17-20 TUE", 1700000000, 0},
		{"d0-6 MON-FRI\x0022-2 SAT,SUN", 1711846800, 1}, // a daylight saving change in New York
		{"u22-0 FRI-MON\x009 MON", 1712412000, 2},
		{"u0-23 SUN-SAT", 0, 0},
		{"d5,6-7,23 WED-TUE", -1, 3},
		{"u25-3 MON", 1700000000, 0},
		{"", 1700000000, 0},
	} {
		f.Add(seed.specs, seed.unix, seed.zone)
	}
	zones := fuzzZones()
	f.Fuzz(func(t *testing.T, specs string, unix int64, zone uint8) {
		var uptime, downtime []string
		if specs != "" {
			list := strings.Split(specs[1:], "\x00")
			if specs[0] == 'd' {
				downtime = list
			} else {
				uptime = list
			}
		}
		s, err := New(uptime, downtime)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || (pe.Kind != "uptime" && pe.Kind != "downtime") {
				t.Fatalf("New(%q, %q): error %#v is not a *ParseError of kind uptime/downtime", uptime, downtime, err)
			}
			return
		}
		// Instants within a few centuries of 1970.
		now := time.Unix(unix%(1<<36), 0).In(zones[int(zone)%len(zones)])
		active := s.Active(now)
		if got, why := Decide(nil, s, now); got != active || why == "" {
			t.Fatalf("Decide = %v (%q), Active = %v at %v", got, why, active, now)
		}
		if got, _ := Decide([]string{TagForceOn, TagForceOff}, s, now); got {
			t.Fatal("force_workers:off does not win over force_workers:on")
		}
		if got, _ := Decide([]string{TagForceOn}, s, now); !got {
			t.Fatal("force_workers:on does not force polling")
		}
		if next := s.Next(now); !next.IsZero() {
			if !next.After(now) || next.Sub(now) > horizon {
				t.Fatalf("Next(%v) = %v: not after now within %s", now, next, horizon)
			}
			if s.Active(next) == active {
				t.Fatalf("Next(%v) = %v, but the state there is the same (%v)", now, next, active)
			}
		}
		rep := Report(s, []QueueState{{Name: "q", Tags: []string{TagForceOn}}}, now)
		if !strings.HasSuffix(rep, "\n") || !strings.Contains(rep, "Listening to queue 'q'") {
			t.Fatalf("Report:\n%s", rep)
		}
	})
}
