package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// zone is a fixed zone, so wall clock and instants never disagree.
var zone = time.FixedZone("UTC+2", 2*60*60)

// Days of the week starting Sunday 2024-05-05, as days of May.
const (
	sun = 5 + iota
	mon
	tue
	wed
	thu
	fri
	sat
	nextSun
	nextMon
)

// at returns May <day> 2024, h:m in zone.
func at(day, h, m int) time.Time {
	return time.Date(2024, time.May, day, h, m, 0, 0, zone)
}

func TestCalendar(t *testing.T) {
	t.Parallel()
	if got := at(sun, 0, 0).Weekday(); got != time.Sunday {
		t.Fatalf("May %d 2024 is a %v, want Sunday", sun, got)
	}
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		inside  []time.Time
		outside []time.Time
	}{{
		spec:    "17-20 TUE",
		inside:  []time.Time{at(tue, 17, 0), at(tue, 19, 59)},
		outside: []time.Time{at(tue, 16, 59), at(tue, 20, 0), at(mon, 18, 0), at(wed, 18, 0)},
	}, {
		spec:    "0-6 MON", // hour 0 is allowed (upstream drops it)
		inside:  []time.Time{at(mon, 0, 0), at(mon, 5, 59)},
		outside: []time.Time{at(mon, 6, 0), at(sun, 23, 59), at(tue, 0, 0)},
	}, {
		spec:    "9 MON", // 9 to 24
		inside:  []time.Time{at(mon, 9, 0), at(mon, 23, 59)},
		outside: []time.Time{at(mon, 8, 59), at(tue, 0, 0)},
	}, {
		spec:    "22-0 WED", // an end of 0 means 24, not across midnight
		inside:  []time.Time{at(wed, 22, 0), at(wed, 23, 59)},
		outside: []time.Time{at(wed, 21, 59), at(thu, 0, 0), at(wed, 0, 0)},
	}, {
		spec:    "0-0 SAT", // the whole day
		inside:  []time.Time{at(sat, 0, 0), at(sat, 12, 0), at(sat, 23, 59)},
		outside: []time.Time{at(fri, 23, 59), at(nextSun, 0, 0)},
	}, {
		spec:    "22-2 FRI", // across midnight: Fri 22:00 to Sat 01:59
		inside:  []time.Time{at(fri, 22, 0), at(fri, 23, 59), at(sat, 0, 0), at(sat, 1, 59)},
		outside: []time.Time{at(fri, 21, 59), at(sat, 2, 0), at(fri, 1, 0), at(sat, 22, 0)},
	}, {
		spec:    "22-2 SAT", // across midnight and the week end
		inside:  []time.Time{at(sat, 23, 0), at(nextSun, 1, 0)},
		outside: []time.Time{at(sun, 2, 0), at(sat, 21, 59), at(nextSun, 22, 0)},
	}, {
		spec:    "9-12,13-17 MON-FRI",
		inside:  []time.Time{at(mon, 9, 0), at(wed, 11, 59), at(fri, 16, 59)},
		outside: []time.Time{at(tue, 12, 30), at(sat, 10, 0), at(sun, 10, 0), at(thu, 17, 0)},
	}, {
		spec:    "8-9 fri-mon", // wrapping day range, lower case
		inside:  []time.Time{at(fri, 8, 0), at(sat, 8, 0), at(nextSun, 8, 0), at(nextMon, 8, 0), at(mon, 8, 30)},
		outside: []time.Time{at(tue, 8, 0), at(wed, 8, 0), at(thu, 8, 0)},
	}, {
		spec:    "10-11 MON-SUN", // wraps to the whole week
		inside:  []time.Time{at(sun, 10, 0), at(wed, 10, 0), at(sat, 10, 0)},
		outside: []time.Time{at(sun, 11, 0)},
	}, {
		spec:    "  23-24   SUN,Tue,THU  ",
		inside:  []time.Time{at(sun, 23, 0), at(tue, 23, 30), at(thu, 23, 59)},
		outside: []time.Time{at(mon, 23, 0), at(sun, 22, 59)},
	}}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			w, err := ParseWindow(tt.spec)
			if err != nil {
				t.Fatalf("ParseWindow: %v", err)
			}
			for _, tm := range tt.inside {
				if !w.Contains(tm) {
					t.Errorf("Contains(%s) = false, want true", tm.Format(untilLayout))
				}
			}
			for _, tm := range tt.outside {
				if w.Contains(tm) {
					t.Errorf("Contains(%s) = true, want false", tm.Format(untilLayout))
				}
			}
		})
	}
}

func TestWindowContainsUsesOwnLocation(t *testing.T) {
	t.Parallel()
	w, err := ParseWindow("17-18 TUE")
	if err != nil {
		t.Fatal(err)
	}
	tm := at(tue, 17, 30) // 15:30 UTC
	if !w.Contains(tm) {
		t.Errorf("Contains(%v) = false, want true", tm)
	}
	if w.Contains(tm.UTC()) {
		t.Errorf("Contains(%v) = true, want false: the same instant is 15:30 in UTC", tm.UTC())
	}
	var zero Window
	if zero.Contains(tm) {
		t.Error("the zero Window contains a time")
	}
}

func TestWindowString(t *testing.T) {
	t.Parallel()
	w, err := ParseWindow(" 17-20\tTUE ")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.String(), "17-20 TUE"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestWindowLines(t *testing.T) {
	t.Parallel()
	tests := []struct{ spec, want string }{
		{"17-20 TUE", "  - 17:00-19:59 on TUE"},
		{"0-6 MON-WED", "  - 0:00-5:59 on MON and TUE and WED"},
		{"9 SAT,SUN", "  - 9:00-23:59 on SAT and SUN"},
		{"22-0 FRI-SUN,SAT", "  - 22:00-23:59 on FRI and SAT and SUN"},
		{"22-2,5-7 FRI", "  - 22:00-1:59 on FRI\n  - 5:00-6:59 on FRI"},
	}
	for _, tt := range tests {
		w, err := ParseWindow(tt.spec)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tt.spec, err)
		}
		if got := strings.Join(w.lines(), "\n"); got != tt.want {
			t.Errorf("lines of %q:\n got %q\nwant %q", tt.spec, got, tt.want)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ spec, want string }{
		{"", `invalid window spec "": empty spec, want "<hours> <days>" such as "17-20 TUE"`},
		{"   ", `invalid window spec "   ": empty spec, want "<hours> <days>" such as "17-20 TUE"`},
		{"17-20", `invalid window spec "17-20": no days after the hours "17-20", want "<hours> <days>" such as "17-20 TUE"`},
		{"17-20 MON, TUE", `invalid window spec "17-20 MON, TUE": 3 space-separated parts, want "<hours> <days>" such as "17-20 TUE" with no spaces inside either part`},
		{"25-3 MON", `invalid window spec "25-3 MON": hour 25 out of range 0-24`},
		{"3-25 MON", `invalid window spec "3-25 MON": hour 25 out of range 0-24`},
		{"99999999999999999999 MON", `invalid window spec "99999999999999999999 MON": hour 99999999999999999999 out of range 0-24`},
		{"24 MON", `invalid window spec "24 MON": hour range "24" starts at hour 24, the last hour that can start a range is 23`},
		{"5-5 MON", `invalid window spec "5-5 MON": hour range "5-5" is empty: it ends where it starts`},
		{"x-5 MON", `invalid window spec "x-5 MON": hour "x" in "x-5" is not a number`},
		{"+5 MON", `invalid window spec "+5 MON": hour "+5" in "+5" is not a number`},
		{"-5 MON", `invalid window spec "-5 MON": hour range "-5" is missing an hour`},
		{"5- MON", `invalid window spec "5- MON": hour range "5-" is missing an hour`},
		{"1-2-3 MON", `invalid window spec "1-2-3 MON": hour range "1-2-3" has more than one "-"`},
		{"1-2,,3 MON", `invalid window spec "1-2,,3 MON": empty hour range in "1-2,,3"`},
		{"17-20 MOON", `invalid window spec "17-20 MOON": unknown day "MOON", want one of SUN, MON, TUE, WED, THU, FRI, SAT`},
		{"17-20 Monday", `invalid window spec "17-20 Monday": unknown day "Monday", want one of SUN, MON, TUE, WED, THU, FRI, SAT`},
		{"17-20 MON-", `invalid window spec "17-20 MON-": unknown day "", want one of SUN, MON, TUE, WED, THU, FRI, SAT`},
		{"17-20 MON-TUE-WED", `invalid window spec "17-20 MON-TUE-WED": day range "MON-TUE-WED" has more than one "-"`},
		{"17-20 MON,", `invalid window spec "17-20 MON,": empty day in "MON,"`},
		{"17-20 \u017fUN", `invalid window spec "17-20 ſUN": unknown day "ſUN", want one of SUN, MON, TUE, WED, THU, FRI, SAT`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			_, err := ParseWindow(tt.spec)
			if err == nil {
				t.Fatalf("ParseWindow(%q) succeeded, want error %q", tt.spec, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("ParseWindow(%q) error\n got %s\nwant %s", tt.spec, got, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Spec != tt.spec || pe.Kind != "window" {
				t.Errorf("error %#v is not a *ParseError for spec %q of kind window", err, tt.spec)
			}
		})
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, seed := range []string{
		"17-20 TUE", "0-6 MON-FRI", "22-2 SAT,SUN", "9 MON", "22-0 FRI-MON",
		"", "25-3 MON", "1-2-3 x", "0-0 sun", "5,6-7,23 WED-TUE", "\xff \xfe",
	} {
		f.Add(seed)
	}
	week := make([]time.Time, 0, 7*24)
	for h := range 7 * 24 {
		week = append(week, at(sun, h, 30)) // time.Date normalises hours past 23
	}
	f.Fuzz(func(t *testing.T, spec string) {
		w, err := ParseWindow(spec)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid window spec") {
				t.Errorf("error %q does not name the spec", err)
			}
			return
		}
		// The canonical form parses to the same window.
		again, err := ParseWindow(w.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", w.String(), spec, err)
		}
		if again.mask != w.mask {
			t.Fatalf("String() %q of %q parses to another window", w.String(), spec)
		}
		// A parsed window covers some hour, and Report lines never panic.
		covered := false
		for _, tm := range week {
			covered = covered || w.Contains(tm)
		}
		if !covered {
			t.Errorf("window %q covers no hour of the week", spec)
		}
		_ = w.lines()
	})
}
