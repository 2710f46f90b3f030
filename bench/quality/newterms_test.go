package quality

import (
	"reflect"
	"testing"
	"time"
)

func TestNewTerms(t *testing.T) {
	day := 24 * time.Hour
	type alert struct {
		identity, action string
		at               time.Duration
	}
	ev := func(d time.Duration, identity, action string) Event {
		return Event{Time: at(d), Identity: identity, Action: action}
	}
	tests := []struct {
		name   string
		events []Event
		from   time.Duration // alerts start at t0 + from
		want   []alert
	}{
		{
			name:   "nothing alerts during training, and what it taught is known after",
			events: []Event{ev(time.Hour, "a", "get"), ev(2*day, "a", "put"), ev(5*day, "a", "get"), ev(6*day, "a", "put")},
			from:   4 * day,
		},
		{
			name:   "a new action after training alerts once per term",
			events: []Event{ev(time.Hour, "a", "get"), ev(5*day, "a", "del"), ev(5*day+time.Minute, "a", "del"), ev(30*day, "a", "del")},
			from:   4 * day,
			want:   []alert{{"a", "del", 5 * day}},
		},
		{
			name:   "a term is per identity",
			events: []Event{ev(time.Hour, "a", "get"), ev(5*day, "b", "get"), ev(5*day+time.Second, "a", "get")},
			from:   4 * day,
			want:   []alert{{"b", "get", 5 * day}},
		},
		{
			name: "a term unseen for more than the window is new again; exactly the window is still known",
			events: []Event{
				ev(0, "a", "get"), ev(15*day, "a", "get"),
				ev(day, "a", "put"), ev(15*day, "a", "put"),
			},
			from: 4 * day,
			want: []alert{{"a", "get", 15 * day}},
		},
		{
			name:   "events are taken in time order whatever the input order",
			events: []Event{ev(5*day+time.Minute, "a", "del"), ev(5*day, "a", "del"), ev(time.Hour, "a", "del")},
			from:   4 * day,
		},
		{
			name:   "no training: every first use alerts",
			events: []Event{ev(time.Minute, "a", "get"), ev(time.Hour, "a", "put"), ev(2*time.Hour, "a", "get")},
			want:   []alert{{"a", "get", time.Minute}, {"a", "put", time.Hour}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []alert
			for _, f := range NewTerms(tt.events, NewTermsWindow, at(tt.from)) {
				if f.Detector != NewTermsDetector || f.FirstSeen != f.LastSeen || f.Count != 1 {
					t.Errorf("finding %+v: want detector %s, one time, count 1", f, NewTermsDetector)
				}
				got = append(got, alert{f.Identity.ID, f.Analysis.Observed, f.FirstSeen.Sub(t0)})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("alerts %v, want %v", got, tt.want)
			}
		})
	}
}
