// Package schedule decides when the daemon polls its queues: the
// uptime and downtime windows of upstream's
// helper/runtime_verification.py, the force_workers queue tags of
// should_be_currently_active, and the --status report.
//
// Everything here is a pure function of a time.Time the caller passes
// in; the package never reads the clock, starts no goroutines and keeps
// no state, so the polling loop can be tested with fixed times.
//
// # Spec grammar
//
// A window spec is "<hours> <days>", two blank-separated parts:
//
//   - hours is a comma list of "a-b" or "a". "a-b" runs from a:00 up to
//     but not including b:00, so "17-20" is 17:00-19:59. "a" alone runs
//     from a:00 to midnight. Hours are 0 to 24; an end of 0 means 24
//     ("22-0" is 22:00-23:59). A range may start at hour 0 ("0-6").
//   - days is a comma list of SUN, MON, TUE, WED, THU, FRI and SAT (any
//     ASCII case) and ranges of them such as "MON-FRI". A range whose
//     end comes first in SUN..SAT order wraps over the weekend:
//     "FRI-MON" is FRI, SAT, SUN, MON.
//
// A range whose end is below its start crosses midnight, and the hours
// after midnight belong to the day after the named day: "22-2 FRI" is
// Friday 22:00 to Saturday 01:59. This reads as an operator means it
// ("the Friday night shift") and keeps each named day the day the
// window opens.
//
// # Differences from upstream
//
// Upstream silently drops ranges that start at hour 0 (0 is falsy in
// Python), matches nothing for ranges that cross midnight or wrap over
// the weekend, skips malformed parts with a warning, and when both
// uptime and downtime are configured logs an error and ignores both.
// Here hour 0 works, midnight and weekend wrapping work as described
// above, and malformed specs and uptime-with-downtime are errors.
//
// # Time zones and daylight saving
//
// Windows are matched against the wall clock (weekday and hour) of the
// time passed in, in that time's own location; pass t.Local() for the
// machine's zone, as upstream's datetime.now() does. On a day when the
// clocks change an hour may be skipped or repeated; a repeated hour is
// inside a window both times, a skipped one never. Schedule.Next
// follows the real zone transitions, so the instant it returns is when
// the wall clock actually enters a different hour.
package schedule

import (
	"errors"
	"strconv"
	"time"
)

// Mode says how a Schedule's windows are used.
type Mode int

const (
	// Always means no uptime or downtime was configured: always active.
	Always Mode = iota
	// Uptime means active only inside one of the windows.
	Uptime
	// Downtime means active only outside all of the windows.
	Downtime
)

func (m Mode) String() string {
	switch m {
	case Always:
		return "always"
	case Uptime:
		return "uptime"
	case Downtime:
		return "downtime"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ErrBothGiven is returned by New when uptime and downtime specs are
// both given. Upstream logs an error and ignores both; we refuse.
var ErrBothGiven = errors.New("both uptime and downtime were given: use one of them")

// Schedule is a set of uptime windows or a set of downtime windows,
// never both. The zero Schedule is Always. A Mode other than Always,
// Uptime and Downtime behaves as Always.
type Schedule struct {
	Mode    Mode
	Windows []Window
}

// New builds a Schedule from the uptime and downtime specs of the
// command line or configuration (agent.uptime, agent.downtime). Giving
// neither yields Always; giving both yields ErrBothGiven. A spec that
// does not parse yields a *ParseError whose Kind is "uptime" or
// "downtime".
func New(uptime, downtime []string) (Schedule, error) {
	if len(uptime) > 0 && len(downtime) > 0 {
		return Schedule{}, ErrBothGiven
	}
	s := Schedule{Mode: Always}
	specs := uptime
	switch {
	case len(uptime) > 0:
		s.Mode = Uptime
	case len(downtime) > 0:
		s.Mode, specs = Downtime, downtime
	default:
		return s, nil
	}
	for _, spec := range specs {
		w, err := parseWindow(s.Mode.String(), spec)
		if err != nil {
			return Schedule{}, err
		}
		s.Windows = append(s.Windows, w)
	}
	return s, nil
}

// match returns the first window that contains t.
func (s Schedule) match(t time.Time) (Window, bool) {
	for _, w := range s.Windows {
		if w.Contains(t) {
			return w, true
		}
	}
	return Window{}, false
}

// Active reports whether the schedule lets the daemon poll at t: inside
// any window for Uptime, outside all windows for Downtime, and always
// for Always.
func (s Schedule) Active(t time.Time) bool {
	_, inside := s.match(t)
	switch s.Mode {
	case Uptime:
		return inside
	case Downtime:
		return !inside
	}
	return true
}

// horizon bounds the search of Next. Windows repeat every week, so a
// state that does not change within a week (plus slack for daylight
// saving changes) never changes.
const horizon = 8 * 24 * time.Hour

// Next returns the first instant after t at which Active(t) changes,
// in t's location: when to wake up to start or stop polling, and the
// "until" of the --status report. It returns the zero Time when the
// state never changes (Always, or windows covering the whole week or
// none of it).
func (s Schedule) Next(t time.Time) time.Time {
	t = t.Round(0) // compare wall times only, not monotonic readings
	current := s.Active(t)
	limit := t.Add(horizon)
	for x := nextHourChange(t); !x.After(limit); x = nextHourChange(x) {
		if s.Active(x) != current {
			return x
		}
	}
	return time.Time{}
}

// nextHourChange returns the first instant after t at which the wall
// clock of t's location may show another hour: the next top of the
// hour at the current UTC offset, or the next zone transition (a
// daylight saving change) if that comes sooner. Stepping through these
// instants visits every wall-clock hour that really occurs, and only
// those, whatever the zone's offsets.
func nextHourChange(t time.Time) time.Time {
	intoHour := time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second +
		time.Duration(t.Nanosecond())
	next := t.Add(time.Hour - intoHour)
	if _, end := t.ZoneBounds(); !end.IsZero() && end.Before(next) {
		return end
	}
	return next
}
