package schedule

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Queue tags that override the schedule for one queue. They are matched
// exactly, as upstream does.
const (
	TagForceOff = "force_workers:off"
	TagForceOn  = "force_workers:on"
)

// untilLayout formats the instant of the next state change in Report.
const untilLayout = "Mon 2006-01-02 15:04 MST"

// Decide reports whether the daemon should poll a queue with the given
// tags at t, as upstream's should_be_currently_active, and says why in
// a short phrase for the operator log. The rules, in order:
//
//  1. tag force_workers:off: do not poll (it wins over force_workers:on);
//  2. tag force_workers:on: poll;
//  3. otherwise the schedule decides (Schedule.Active).
//
// Upstream also honours an enterprise-only worker runtime property
// "force" between steps 2 and 3; callers that have one apply it
// themselves before calling Decide.
func Decide(queueTags []string, s Schedule, t time.Time) (active bool, why string) {
	switch {
	case slices.Contains(queueTags, TagForceOff):
		return false, "queue is tagged " + TagForceOff
	case slices.Contains(queueTags, TagForceOn):
		return true, "queue is tagged " + TagForceOn
	}
	w, inside := s.match(t)
	switch s.Mode {
	case Uptime:
		if inside {
			return true, fmt.Sprintf("inside uptime window %q", w.String())
		}
		return false, "outside all uptime windows"
	case Downtime:
		if inside {
			return false, fmt.Sprintf("inside downtime window %q", w.String())
		}
		return true, "outside all downtime windows"
	}
	return true, "no uptime or downtime configured"
}

// QueueState is what Report needs to know about one queue the daemon
// listens to.
type QueueState struct {
	Name string
	Tags []string
}

// forced returns the queue's force tag, or "" if it has none;
// force_workers:off wins, as in Decide.
func (q QueueState) forced() string {
	switch {
	case slices.Contains(q.Tags, TagForceOff):
		return TagForceOff
	case slices.Contains(q.Tags, TagForceOn):
		return TagForceOn
	}
	return ""
}

// Report renders the text that "daemon --status" prints (spec section
// 2.13, upstream's print_uptime_properties), at the instant now, ending
// in a newline. In order:
//
//   - "Working hours uptime configurations" (or downtime) and one line
//     per hour range, "  - 17:00-19:59 on MON and TUE"; without a
//     schedule, "No uptime/downtime configurations found";
//   - the schedule's state at now, "Currently active" or "Currently
//     inactive", with " (until <time>)" when it will change within a
//     week; this line is ours, upstream does not print it;
//   - "\nCurrently forced ON" when any queue is tagged force_workers:on,
//     else "\nCurrently forced OFF" when any is tagged force_workers:off,
//     else a line holding one space, as upstream;
//   - one line per queue, "  - Listening to queue 'q'", with
//     " (tagged 'force_workers:on')'" appended for a forced queue. The
//     stray closing quote is upstream's.
//
// Upstream's line about the enterprise-only server runtime property is
// not produced.
func Report(s Schedule, queues []QueueState, now time.Time) string {
	var config []string
	switch s.Mode {
	case Uptime, Downtime:
		config = append(config, fmt.Sprintf("Working hours %s configurations", s.Mode))
		for _, w := range s.Windows {
			config = append(config, w.lines()...)
		}
	default:
		config = append(config, "No uptime/downtime configurations found")
	}

	state := "Currently inactive"
	if s.Active(now) {
		state = "Currently active"
	}
	if next := s.Next(now); !next.IsZero() {
		state += " (until " + next.Format(untilLayout) + ")"
	}

	var (
		queueLines []string
		forced     string
	)
	for _, q := range queues {
		line := fmt.Sprintf("  - Listening to queue '%s'", q.Name)
		switch tag := q.forced(); tag {
		case TagForceOn:
			forced = "ON"
			line += fmt.Sprintf(" (tagged '%s')'", tag)
		case TagForceOff:
			if forced == "" {
				forced = "OFF"
			}
			line += fmt.Sprintf(" (tagged '%s')'", tag)
		}
		queueLines = append(queueLines, line)
	}
	forcedLine := " "
	if forced != "" {
		forcedLine = "\nCurrently forced " + forced
	}

	parts := []string{strings.Join(config, "\n"), state, forcedLine, strings.Join(queueLines, "\n")}
	parts = slices.DeleteFunc(parts, func(p string) bool { return p == "" })
	return strings.Join(parts, "\n") + "\n"
}
