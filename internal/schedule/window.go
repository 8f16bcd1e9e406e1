package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dayNames are the day abbreviations a spec may use, indexed by
// time.Weekday, as upstream's DAYS list (strftime("%a") upper-cased).
var dayNames = [7]string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}

// specExample is quoted in errors about the shape of a whole spec.
const specExample = `want "<hours> <days>" such as "17-20 TUE"`

// ParseError reports a spec that could not be parsed. Kind says which
// list the spec came from ("uptime", "downtime", or "window" when
// ParseWindow was called directly).
type ParseError struct {
	Kind string
	Spec string
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("invalid %s spec %q: %v", e.Kind, e.Spec, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// hourRange is one element of a spec's hour list, as written except
// that an end of 0 has become 24. End is exclusive. An End below Start
// crosses midnight.
type hourRange struct{ start, end int }

// crossesMidnight reports whether the range runs on into the next day.
func (r hourRange) crossesMidnight() bool { return r.end < r.start }

// Window is one "<hours> <days>" spec, such as "17-20 TUE",
// "0-6 MON-FRI", "22-2 SAT,SUN" or "9 MON". The zero Window contains no
// time at all. Build one with ParseWindow.
type Window struct {
	spec  string         // fields of the spec joined by one space
	hours []hourRange    // as written, for Report
	days  []time.Weekday // as written, ranges expanded, no repeats
	// mask[d] has bit h set when hour h of weekday d is inside the
	// window. The part of a cross-midnight range after midnight is set
	// on the following weekday.
	mask [7]uint32
}

// ParseWindow parses one "<hours> <days>" spec; see the package
// documentation for the grammar. Errors are *ParseError values whose
// message names the spec and what is wrong with it.
func ParseWindow(spec string) (Window, error) {
	return parseWindow("window", spec)
}

func parseWindow(kind, spec string) (Window, error) {
	fail := func(err error) (Window, error) {
		return Window{}, &ParseError{Kind: kind, Spec: spec, Err: err}
	}
	fields := strings.Fields(spec)
	switch len(fields) {
	case 0:
		return fail(errors.New("empty spec, " + specExample))
	case 1:
		return fail(fmt.Errorf("no days after the hours %q, %s", fields[0], specExample))
	case 2:
	default:
		return fail(fmt.Errorf("%d space-separated parts, %s with no spaces inside either part",
			len(fields), specExample))
	}
	hours, err := parseHours(fields[0])
	if err != nil {
		return fail(err)
	}
	days, err := parseDays(fields[1])
	if err != nil {
		return fail(err)
	}
	w := Window{spec: fields[0] + " " + fields[1], hours: hours, days: days}
	for _, d := range days {
		for _, r := range hours {
			if r.crossesMidnight() {
				w.mask[d] |= bits(r.start, 24)
				w.mask[(d+1)%7] |= bits(0, r.end)
			} else {
				w.mask[d] |= bits(r.start, r.end)
			}
		}
	}
	return w, nil
}

// bits returns a mask with bits start..end-1 set, for 0 <= start <= end <= 24.
func bits(start, end int) uint32 {
	return (uint32(1)<<end - 1) &^ (uint32(1)<<start - 1)
}

// parseHours parses a comma list of "a-b" and "a" hour ranges.
func parseHours(list string) ([]hourRange, error) {
	var out []hourRange
	for part := range strings.SplitSeq(list, ",") {
		if part == "" {
			return nil, fmt.Errorf("empty hour range in %q", list)
		}
		startText, endText, isRange := strings.Cut(part, "-")
		if strings.Contains(endText, "-") {
			return nil, fmt.Errorf(`hour range %q has more than one "-"`, part)
		}
		start, err := parseHour(part, startText)
		if err != nil {
			return nil, err
		}
		end := 24
		if isRange {
			if end, err = parseHour(part, endText); err != nil {
				return nil, err
			}
		}
		if start == 24 {
			return nil, fmt.Errorf("hour range %q starts at hour 24, the last hour that can start a range is 23", part)
		}
		if end == 0 {
			end = 24
		}
		if start == end {
			return nil, fmt.Errorf("hour range %q is empty: it ends where it starts", part)
		}
		out = append(out, hourRange{start: start, end: end})
	}
	return out, nil
}

// parseHour parses one hour, 0 to 24, of the range part.
func parseHour(part, text string) (int, error) {
	if text == "" {
		return 0, fmt.Errorf("hour range %q is missing an hour", part)
	}
	for _, r := range text {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("hour %q in %q is not a number", text, part)
		}
	}
	n, err := strconv.Atoi(text)
	if err != nil || n > 24 {
		return 0, fmt.Errorf("hour %s out of range 0-24", text)
	}
	return n, nil
}

// parseDays parses a comma list of day names and day ranges. A range
// whose end comes before its start in SUN..SAT order wraps around the
// week end, so FRI-MON is FRI, SAT, SUN and MON.
func parseDays(list string) ([]time.Weekday, error) {
	var (
		out  []time.Weekday
		seen [7]bool
	)
	add := func(d time.Weekday) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for part := range strings.SplitSeq(list, ",") {
		if part == "" {
			return nil, fmt.Errorf("empty day in %q", list)
		}
		firstText, lastText, isRange := strings.Cut(part, "-")
		if strings.Contains(lastText, "-") {
			return nil, fmt.Errorf(`day range %q has more than one "-"`, part)
		}
		first, err := parseDay(firstText)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = parseDay(lastText); err != nil {
				return nil, err
			}
		}
		for d := first; ; d = (d + 1) % 7 {
			add(d)
			if d == last {
				break
			}
		}
	}
	return out, nil
}

// parseDay parses one day abbreviation, ignoring ASCII case only (so
// that no Unicode case folding can turn other text into a day name).
func parseDay(text string) (time.Weekday, error) {
	upper := []byte(text)
	for i, c := range upper {
		if 'a' <= c && c <= 'z' {
			upper[i] = c - 'a' + 'A'
		}
	}
	for d, name := range dayNames {
		if string(upper) == name {
			return time.Weekday(d), nil
		}
	}
	return 0, fmt.Errorf("unknown day %q, want one of %s", text, strings.Join(dayNames[:], ", "))
}

// Contains reports whether t falls inside the window, judged by t's
// wall clock (weekday and hour) in t's own location. Callers choose the
// zone explicitly, normally with t.Local() or t.In(loc).
func (w Window) Contains(t time.Time) bool {
	return w.mask[t.Weekday()]&(1<<uint(t.Hour())) != 0
}

// String returns the spec the window was parsed from, with surrounding
// blanks removed and one space between hours and days.
func (w Window) String() string { return w.spec }

// lines returns the --status lines for the window, one per hour range,
// in upstream's form "  - 17:00-19:59 on MON and TUE".
func (w Window) lines() []string {
	names := make([]string, len(w.days))
	for i, d := range w.days {
		names[i] = dayNames[d]
	}
	on := strings.Join(names, " and ")
	out := make([]string, len(w.hours))
	for i, r := range w.hours {
		out[i] = fmt.Sprintf("  - %d:00-%d:59 on %s", r.start, r.end-1, on)
	}
	return out
}
