package schedule

import (
	"errors"
	"testing"
	"time"
)

// mustNew builds a Schedule or fails the test.
func mustNew(t *testing.T, uptime, downtime []string) Schedule {
	t.Helper()
	s, err := New(uptime, downtime)
	if err != nil {
		t.Fatalf("New(%q, %q): %v", uptime, downtime, err)
	}
	return s
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		uptime, downtime []string
		wantMode         Mode
		wantWindows      int
		wantErr          string
	}{
		{name: "none", wantMode: Always},
		{name: "empty lists", uptime: []string{}, downtime: []string{}, wantMode: Always},
		{name: "uptime", uptime: []string{"17-20 TUE", "0-6 MON"}, wantMode: Uptime, wantWindows: 2},
		{name: "downtime", downtime: []string{"9-17 MON-FRI"}, wantMode: Downtime, wantWindows: 1},
		{
			name: "both", uptime: []string{"17-20 TUE"}, downtime: []string{"9-17 MON"},
			wantErr: "both uptime and downtime were given: use one of them",
		},
		{
			name: "bad uptime", uptime: []string{"17-20 TUE", "25-3 MON"},
			wantErr: `invalid uptime spec "25-3 MON": hour 25 out of range 0-24`,
		},
		{
			name: "bad downtime", downtime: []string{"17-20"},
			wantErr: `invalid downtime spec "17-20": no days after the hours "17-20", want "<hours> <days>" such as "17-20 TUE"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.uptime, tt.downtime)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if s.Mode != tt.wantMode || len(s.Windows) != tt.wantWindows {
				t.Errorf("New = %v with %d windows, want %v with %d", s.Mode, len(s.Windows), tt.wantMode, tt.wantWindows)
			}
		})
	}
	if _, err := New([]string{"1 MON"}, []string{"2 MON"}); !errors.Is(err, ErrBothGiven) {
		t.Errorf("New with both: error %v is not ErrBothGiven", err)
	}
}

func TestModeString(t *testing.T) {
	t.Parallel()
	for m, want := range map[Mode]string{Always: "always", Uptime: "uptime", Downtime: "downtime", Mode(7): "Mode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestActive(t *testing.T) {
	t.Parallel()
	work := []string{"9-17 MON-FRI", "0-2 SAT"}
	tests := []struct {
		name             string
		uptime, downtime []string
		at               time.Time
		want             bool
	}{
		{name: "always", at: at(sun, 3, 0), want: true},
		{name: "uptime inside", uptime: work, at: at(wed, 10, 0), want: true},
		{name: "uptime inside second window", uptime: work, at: at(sat, 1, 0), want: true},
		{name: "uptime outside hours", uptime: work, at: at(wed, 17, 0), want: false},
		{name: "uptime outside days", uptime: work, at: at(sun, 10, 0), want: false},
		{name: "downtime inside", downtime: work, at: at(wed, 10, 0), want: false},
		{name: "downtime inside second window", downtime: work, at: at(sat, 0, 0), want: false},
		{name: "downtime outside", downtime: work, at: at(wed, 8, 59), want: true},
		{name: "downtime across midnight, after", downtime: []string{"22-6 FRI"}, at: at(sat, 5, 0), want: false},
		{name: "downtime across midnight, before", downtime: []string{"22-6 FRI"}, at: at(fri, 5, 0), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, tt.uptime, tt.downtime)
			if got := s.Active(tt.at); got != tt.want {
				t.Errorf("Active(%s) = %v, want %v", tt.at.Format(untilLayout), got, tt.want)
			}
		})
	}
	if !(Schedule{Mode: Mode(9)}).Active(at(sun, 0, 0)) {
		t.Error("an unknown Mode is not Always")
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		uptime, downtime []string
		from, want       time.Time // want zero: never changes
	}{
		{name: "always", from: at(mon, 10, 0)},
		{name: "whole week", uptime: []string{"0-0 SUN-SAT"}, from: at(mon, 10, 0)},
		{name: "uptime opens", uptime: []string{"17-20 TUE"}, from: at(tue, 12, 34), want: at(tue, 17, 0)},
		{name: "uptime closes", uptime: []string{"17-20 TUE"}, from: at(tue, 17, 0), want: at(tue, 20, 0)},
		{name: "uptime reopens next week", uptime: []string{"17-20 TUE"}, from: at(tue, 20, 0), want: at(tue+7, 17, 0)},
		{name: "across the week end", uptime: []string{"9-17 MON-FRI"}, from: at(fri, 18, 0), want: at(nextMon, 9, 0)},
		{name: "adjacent windows merge", uptime: []string{"9-12 MON", "12-14 MON"}, from: at(mon, 10, 0), want: at(mon, 14, 0)},
		{name: "across midnight", uptime: []string{"22-2 FRI"}, from: at(fri, 23, 0), want: at(sat, 2, 0)},
		{name: "day range wraps", uptime: []string{"0-0 FRI-MON"}, from: at(sat, 12, 0), want: at(tue, 0, 0).AddDate(0, 0, 7)},
		{name: "hour 0", uptime: []string{"0-6 MON"}, from: at(sun, 20, 0), want: at(mon, 0, 0)},
		{name: "downtime starts", downtime: []string{"9-17 MON-FRI"}, from: at(mon, 8, 59), want: at(mon, 9, 0)},
		{name: "downtime ends", downtime: []string{"9-17 MON-FRI"}, from: at(mon, 9, 0), want: at(mon, 17, 0)},
		{name: "just before the hour", uptime: []string{"1 SUN"}, from: at(sun, 0, 59).Add(59*time.Second + 999*time.Millisecond), want: at(sun, 1, 0)},
		{name: "exactly a week away", uptime: []string{"5-6 WED"}, from: at(wed, 6, 0), want: at(wed+7, 5, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, tt.uptime, tt.downtime)
			got := s.Next(tt.from)
			if !got.Equal(tt.want) {
				t.Fatalf("Next(%s) = %s, want %s", tt.from.Format(untilLayout), got.Format(untilLayout), tt.want.Format(untilLayout))
			}
			if got.IsZero() {
				return
			}
			if got.Location() != tt.from.Location() {
				t.Errorf("Next returned a time in %v, want %v", got.Location(), tt.from.Location())
			}
			if s.Active(got) == s.Active(tt.from) || s.Active(got.Add(-time.Nanosecond)) != s.Active(tt.from) {
				t.Errorf("Next(%s) = %s is not where Active changes", tt.from.Format(untilLayout), got.Format(untilLayout))
			}
		})
	}
}

// TestDaylightSaving checks wall-clock hours on the days Berlin's
// clocks change: 2024-03-31 02:00 CET becomes 03:00 CEST, and
// 2024-10-27 03:00 CEST becomes 02:00 CET.
func TestDaylightSaving(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	utc := func(month time.Month, day, h, m int) time.Time {
		return time.Date(2024, month, day, h, m, 0, 0, time.UTC).In(berlin)
	}
	tests := []struct {
		name       string
		uptime     string
		from, want time.Time
	}{
		// Spring: 01:30 CET is 00:30 UTC; the clock jumps at 01:00 UTC.
		{name: "spring, skipped hour never opens", uptime: "2-3 SUN",
			from: utc(time.March, 31, 0, 30), want: time.Date(2024, time.April, 7, 2, 0, 0, 0, berlin)},
		{name: "spring, window closes at the jump", uptime: "0-3 SUN",
			from: utc(time.March, 30, 23, 30), want: utc(time.March, 31, 1, 0)},
		{name: "spring, window opens at the jump", uptime: "3-4 SUN",
			from: utc(time.March, 31, 0, 30), want: utc(time.March, 31, 1, 0)},
		{name: "spring, window spans the jump", uptime: "1-4 SUN",
			from: utc(time.March, 31, 0, 30), want: utc(time.March, 31, 2, 0)},
		// Autumn: 02:00-02:59 happens twice, 00:00-00:59 UTC (CEST) and
		// 01:00-01:59 UTC (CET).
		{name: "autumn, repeated hour opens the first time", uptime: "2-3 SUN",
			from: utc(time.October, 26, 23, 30), want: utc(time.October, 27, 0, 0)},
		{name: "autumn, repeated hour is inside both times", uptime: "2-3 SUN",
			from: utc(time.October, 27, 0, 30), want: utc(time.October, 27, 2, 0)},
		{name: "autumn, day is 25 hours", uptime: "0-0 SUN",
			from: utc(time.October, 26, 22, 0), want: utc(time.October, 27, 23, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, []string{tt.uptime}, nil)
			got := s.Next(tt.from)
			if !got.Equal(tt.want) {
				t.Errorf("Next(%s) = %s (%s), want %s (%s)",
					tt.from.Format(untilLayout), got.Format(untilLayout), got.UTC().Format(time.Kitchen),
					tt.want.Format(untilLayout), tt.want.UTC().Format(time.Kitchen))
			}
		})
	}

	// Contains reads the wall clock: both 02:30s of the autumn day are inside.
	w, err := ParseWindow("2-3 SUN")
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range []time.Time{utc(time.October, 27, 0, 30), utc(time.October, 27, 1, 30)} {
		if !w.Contains(tm) {
			t.Errorf("Contains(%s) = false, want true", tm.Format(untilLayout))
		}
	}
}

// TestHalfHourShift checks Next where daylight saving moves the clock
// by 30 minutes (Lord Howe Island, UTC+10:30 / UTC+11), so the wall
// clock changes hour off the top of a UTC hour.
func TestHalfHourShift(t *testing.T) {
	t.Parallel()
	lordHowe, err := time.LoadLocation("Australia/Lord_Howe")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	utc := func(month time.Month, day, h, m int) time.Time {
		return time.Date(2024, month, day, h, m, 0, 0, time.UTC).In(lordHowe)
	}
	tests := []struct {
		name       string
		uptime     string
		from, want time.Time
	}{
		// 2024-10-06 02:00 (UTC+10:30) becomes 02:30 (UTC+11) at 15:30 UTC.
		{name: "spring, shortened hour opens", uptime: "2-3 SUN",
			from: utc(time.October, 5, 14, 30), want: utc(time.October, 5, 15, 30)},
		{name: "spring, shortened hour closes", uptime: "2-3 SUN",
			from: utc(time.October, 5, 15, 30), want: utc(time.October, 5, 16, 0)},
		// 2024-04-07 02:00 (UTC+11) becomes 01:30 (UTC+10:30) at 15:00 UTC.
		{name: "autumn, lengthened hour", uptime: "1-2 SUN",
			from: utc(time.April, 6, 14, 30), want: utc(time.April, 6, 15, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, []string{tt.uptime}, nil)
			if got := s.Next(tt.from); !got.Equal(tt.want) {
				t.Errorf("Next(%v) = %v, want %v", tt.from, got, tt.want)
			}
		})
	}
}
