package schedule

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	evenings := []string{"17-20 TUE"}
	tests := []struct {
		name             string
		tags             []string
		uptime, downtime []string
		at               time.Time
		want             bool
		wantWhy          string
	}{
		{name: "no schedule", at: at(tue, 10, 0), want: true, wantWhy: "no uptime or downtime configured"},
		{name: "no schedule, forced off", tags: []string{"gpu", TagForceOff}, at: at(tue, 10, 0),
			want: false, wantWhy: "queue is tagged force_workers:off"},
		{name: "uptime inside", uptime: evenings, at: at(tue, 18, 0),
			want: true, wantWhy: `inside uptime window "17-20 TUE"`},
		{name: "uptime outside", uptime: evenings, at: at(tue, 10, 0),
			want: false, wantWhy: "outside all uptime windows"},
		{name: "uptime outside, forced on", tags: []string{TagForceOn}, uptime: evenings, at: at(tue, 10, 0),
			want: true, wantWhy: "queue is tagged force_workers:on"},
		{name: "uptime inside, forced off", tags: []string{TagForceOff}, uptime: evenings, at: at(tue, 18, 0),
			want: false, wantWhy: "queue is tagged force_workers:off"},
		{name: "off wins over on", tags: []string{TagForceOn, TagForceOff}, at: at(tue, 18, 0),
			want: false, wantWhy: "queue is tagged force_workers:off"},
		{name: "tags match exactly", tags: []string{"FORCE_WORKERS:ON", "force_workers:on "}, uptime: evenings, at: at(tue, 10, 0),
			want: false, wantWhy: "outside all uptime windows"},
		{name: "downtime inside", downtime: evenings, at: at(tue, 19, 59),
			want: false, wantWhy: `inside downtime window "17-20 TUE"`},
		{name: "downtime outside", downtime: evenings, at: at(tue, 20, 0),
			want: true, wantWhy: "outside all downtime windows"},
		{name: "downtime inside, forced on", tags: []string{TagForceOn}, downtime: evenings, at: at(tue, 18, 0),
			want: true, wantWhy: "queue is tagged force_workers:on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, tt.uptime, tt.downtime)
			got, why := Decide(tt.tags, s, tt.at)
			if got != tt.want || why != tt.wantWhy {
				t.Errorf("Decide = %v, %q; want %v, %q", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		uptime, downtime []string
		queues           []QueueState
		now              time.Time
		want             string
	}{{
		name:   "no schedule",
		queues: []QueueState{{Name: "default"}},
		now:    at(tue, 10, 0),
		want: "No uptime/downtime configurations found\n" +
			"Currently active\n" +
			" \n" +
			"  - Listening to queue 'default'\n",
	}, {
		name:   "uptime, inactive",
		uptime: []string{"17-20 TUE", "0-6,22-2 MON-WED"},
		queues: []QueueState{{Name: "default"}, {Name: "gpu", Tags: []string{"x"}}},
		now:    at(tue, 10, 0),
		want: "Working hours uptime configurations\n" +
			"  - 17:00-19:59 on TUE\n" +
			"  - 0:00-5:59 on MON and TUE and WED\n" +
			"  - 22:00-1:59 on MON and TUE and WED\n" +
			"Currently inactive (until Tue 2024-05-07 17:00 UTC+2)\n" +
			" \n" +
			"  - Listening to queue 'default'\n" +
			"  - Listening to queue 'gpu'\n",
	}, {
		name:     "downtime, forced",
		downtime: []string{"9 SAT,SUN"},
		queues: []QueueState{
			{Name: "default"},
			{Name: "night", Tags: []string{TagForceOff}},
			{Name: "urgent", Tags: []string{"gpu", TagForceOn}},
		},
		now: at(fri, 23, 0),
		want: "Working hours downtime configurations\n" +
			"  - 9:00-23:59 on SAT and SUN\n" +
			"Currently active (until Sat 2024-05-11 09:00 UTC+2)\n" +
			"\n" +
			"Currently forced ON\n" +
			"  - Listening to queue 'default'\n" +
			"  - Listening to queue 'night' (tagged 'force_workers:off')'\n" +
			"  - Listening to queue 'urgent' (tagged 'force_workers:on')'\n",
	}, {
		name:   "forced off only, no queues listed otherwise",
		uptime: []string{"0-0 SUN-SAT"},
		queues: []QueueState{{Name: "q", Tags: []string{TagForceOff, TagForceOn}}},
		now:    at(mon, 0, 0),
		want: "Working hours uptime configurations\n" +
			"  - 0:00-23:59 on SUN and MON and TUE and WED and THU and FRI and SAT\n" +
			"Currently active\n" +
			"\n" +
			"Currently forced OFF\n" +
			"  - Listening to queue 'q' (tagged 'force_workers:off')'\n",
	}, {
		name: "no queues",
		now:  at(mon, 0, 0),
		want: "No uptime/downtime configurations found\n" +
			"Currently active\n" +
			" \n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustNew(t, tt.uptime, tt.downtime)
			if got := Report(s, tt.queues, tt.now); got != tt.want {
				t.Errorf("Report:\n--- got ---\n%s--- want ---\n%s", got, tt.want)
			}
		})
	}
}
