package fanout_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/fanout"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	origin = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) // a Monday
	api    = schemas.Identity{ID: "spiffe://prod.example.org/ns/payments/sa/api", Kind: schemas.KindWorkload}
)

func peer(i int) string { return fmt.Sprintf("spiffe://prod.example.org/ns/svc-%d/sa/api", i) }

// call is a mesh call of api to peer at t.
func call(t time.Time, to string, result schemas.Result) schemas.Event {
	ev := detectortest.Event(t, "GET /v1/items/{id}", detectortest.IP)
	ev.ID += "-" + to
	ev.Identity = api
	ev.Source = schemas.Source{Family: schemas.FamilyMesh, Format: "envoy_json"}
	ev.Target.Peer = to
	ev.Outcome.Result = result
	return ev
}

// steady is api's traffic from origin for days days: business-hours
// weekdays busier than nights and weekends, each call to one of its first
// peers peers, and on each day in grow one more peer (a deploy).
func steady(days, peers int, grow map[int]bool) []schemas.Event {
	var evs []schemas.Event
	n := 0
	for h := range days * 24 {
		t := origin.Add(time.Duration(h) * time.Hour)
		perHour := 2
		if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday && t.Hour() >= 8 && t.Hour() < 18 {
			perHour = 12
		}
		if grow[h/24] && t.Hour() == 11 {
			peers++
		}
		for i := range perHour {
			evs = append(evs, call(t.Add(time.Duration(i)*time.Hour/time.Duration(perHour)), peer(n%peers), schemas.ResultSuccess))
			n++
		}
	}
	return evs
}

// attack is calls to fresh peers first..first+n−1 within 30 minutes from
// at, three calls each, the first two peers denied.
func attack(at time.Time, first, n int) []schemas.Event {
	var evs []schemas.Event
	for k := range 3 * n {
		j := k % n
		result := schemas.ResultSuccess
		if j < 2 {
			result = schemas.ResultDenied
		}
		evs = append(evs, call(at.Add(time.Duration(k)*30*time.Minute/time.Duration(3*n)), peer(first+j), result))
	}
	return evs
}

func TestFanOut(t *testing.T) {
	week := 7 * 24 * time.Hour
	now := origin.Add(week).Add(14 * time.Hour) // Monday 14:00, a week in
	tests := []struct {
		name       string
		history    []schemas.Event
		built      bool // apply a built baseline of the history
		next       []schemas.Event
		learning   bool
		relearning bool
		wantSev    schemas.Severity // "" means no finding
		minScore   int
		wantIn     string
	}{
		{name: "lateral movement: 10 new peers in half an hour", history: steady(7, 3, nil), next: attack(now, 100, 10),
			wantSev: schemas.SeverityHigh, minScore: 80, wantIn: "called 5 peers it never called before"},
		{name: "lateral movement, with a built graph", history: steady(7, 3, nil), built: true, next: attack(now, 100, 10),
			wantSev: schemas.SeverityHigh, minScore: 80, wantIn: "it knew 3 peers"},
		{name: "a deploy adds one peer", history: steady(7, 3, nil), next: attack(now, 100, 1)},
		{name: "four new peers: under min_new_peers", history: steady(7, 3, nil), next: attack(now, 100, 4)},
		{name: "fan-out during re-learning after a deploy", history: steady(7, 3, nil), next: attack(now, 100, 10), relearning: true},
		{name: "fan-out while learning", history: steady(7, 3, nil), next: attack(now, 100, 10), learning: true},
		{name: "new peers spread over hours", history: steady(7, 3, nil),
			next: append(append(attack(now, 100, 4), attack(now.Add(time.Hour), 104, 4)...), attack(now.Add(2*time.Hour), 108, 4)...)},
		{name: "a busy gateway: 40 new peers are its usual growth", history: steady(7, 150, nil), next: attack(now, 1000, 40)},
		{name: "a busy gateway: 80 new peers are not", history: steady(7, 150, nil), next: attack(now, 1000, 80),
			wantSev: schemas.SeverityMedium, minScore: 60, wantIn: "called 60 peers it never called before"},
		{name: "an identity that never called a peer", history: steady(7, 3, nil)[:0], next: attack(now, 100, 6),
			learning: false, wantSev: schemas.SeverityHigh, minScore: 100},
	}
	d := fanout.New(fanout.DefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := detectortest.Built(t, api, "service", tt.history, now)
			if tt.built && p.Model() == nil {
				t.Fatal("no model")
			}
			if !tt.built {
				p = &baseline.Profile{Identity: api}
				for i := range tt.history {
					p.Observe(&tt.history[i])
				}
				if len(tt.history) == 0 { // a role that made other calls for a week
					first, last := detectortest.Event(origin, "s3:GetObject", detectortest.IP), detectortest.Event(now.Add(-time.Hour), "s3:GetObject", detectortest.IP)
					for range 60 {
						p.Observe(&first)
					}
					p.Observe(&last)
				}
			}
			got := detectortest.Run(d, p, tt.next, func(in *detectors.Input) {
				in.Learning = in.Learning || tt.learning
				in.Relearning = tt.relearning
			})
			f, ok := detectortest.Single(t, got, tt.wantSev != "")
			if !ok {
				return
			}
			t.Logf("%s %d %s: %s | %s", f.Severity, f.Score, f.Technique, f.Explanation, f.Analysis.Baseline)
			if f.Severity != tt.wantSev || f.Score < tt.minScore {
				t.Errorf("severity %s score %d, want %s ≥ %d", f.Severity, f.Score, tt.wantSev, tt.minScore)
			}
			if !strings.Contains(f.Explanation, tt.wantIn) {
				t.Errorf("explanation %q does not say %q", f.Explanation, tt.wantIn)
			}
			if f.ID != schemas.FindingID(fanout.Name, api.ID, strconv.FormatInt(now.Unix()/3600, 10)) || f.Detector != fanout.Name ||
				(f.Technique != "T1021" && f.Technique != "T1046") || f.Analysis.Pattern != schemas.PatternSurge || len(f.EventIDs) != 1 {
				t.Errorf("finding fields: %+v", f)
			}
		})
	}
}

// Three weeks of a service's daily and weekly rhythm, gaining a peer in a
// deploy every few days, raise nothing.
func TestSeasonalStream(t *testing.T) {
	d := fanout.New(fanout.DefaultConfig())
	evs := steady(28, 4, map[int]bool{9: true, 13: true, 20: true, 21: true, 26: true})
	p := detectortest.Built(t, api, "service", evs[:0], origin)
	if got := detectortest.Run(d, p, evs); len(got) != 0 {
		t.Fatalf("%d findings, first %s", len(got), got[0].Explanation)
	}
	if n := p.KnownCount(baseline.DimPeer); n != 9 {
		t.Fatalf("known peers %d, want 9", n)
	}
}

func TestEdgeCases(t *testing.T) {
	d := fanout.New(fanout.DefaultConfig())
	t.Run("first event ever", func(t *testing.T) {
		p := &baseline.Profile{Identity: api}
		ev := call(origin, peer(1), schemas.ResultSuccess)
		in := detectortest.Input(p, &ev)
		in.Learning = false
		in.Window.NewPeers = 5 // even with a window that says so
		if got := d.Detect(in, nil); len(got) != 1 {
			t.Fatalf("a first event that is a fifth new peer: %d findings", len(got))
		}
		in.Learning = true
		if got := d.Detect(in, nil); len(got) != 0 {
			t.Fatalf("learning: %+v", got)
		}
	})
	t.Run("no peer", func(t *testing.T) {
		p := detectortest.Built(t, api, "service", steady(7, 3, nil), origin.Add(7*24*time.Hour))
		ev := detectortest.Event(origin.Add(7*24*time.Hour+time.Minute), "s3:GetObject", detectortest.IP)
		in := detectortest.Input(p, &ev)
		in.Window.NewPeers = 9
		if got := d.Detect(in, nil); len(got) != 0 {
			t.Fatalf("an event without a peer: %+v", got)
		}
	})
	t.Run("one finding per hour, another the next hour", func(t *testing.T) {
		now := origin.Add(7*24*time.Hour + 14*time.Hour)
		p := detectortest.Built(t, api, "service", steady(7, 3, nil), now)
		got := detectortest.Run(d, p, append(attack(now, 100, 12), attack(now.Add(time.Hour), 200, 6)...))
		if len(got) != 2 || got[0].ID == got[1].ID {
			t.Fatalf("got %d findings: %+v", len(got), got)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if errs := (fanout.Config{}).Validate(); len(errs) != 3 {
		t.Fatalf("zero config: %d errors, want 3: %v", len(errs), errs)
	}
	if errs := fanout.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times a call to a known peer in a busy hour (the quiet
// path) and the call that brings the hour to its fifth new peer.
func BenchmarkDetect(b *testing.B) {
	now := origin.Add(7*24*time.Hour + 14*time.Hour)
	p := detectortest.Built(b, api, "service", steady(7, 3, nil), now)
	evs := attack(now, 100, 4)
	for i := range evs {
		p.Observe(&evs[i])
	}
	for _, c := range []struct {
		name  string
		to    string
		fires int
	}{{"quiet", peer(1), 0}, {"fire", peer(104), 1}} {
		b.Run(c.name, func(b *testing.B) {
			d := fanout.New(fanout.DefaultConfig())
			ev := call(now.Add(40*time.Minute), c.to, schemas.ResultSuccess)
			in := detectortest.Input(p, &ev)
			detectortest.BenchmarkDetect(b, d, in, c.fires)
		})
	}
}
