package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// testCase is one inline test of a rule:
//
//   - name: fires on the tenth denial
//     event: {action: "iam:ListRoles", outcome: {result: denied}}  # Event JSON form
//     window: {count: 12, denied: 10, failures: 0, bytes_out: 0}
//     learning: false                  # identity.learning
//     baseline:                        # the identity's history before the event
//     events: 400                    # default: the sum of hourly
//     hourly: [3, 5, 4]              # counts of the hours before the event's, oldest first
//     actions: ["iam:ListRoles"]     # known values per dimension
//     peers: []
//     networks: ["10.0.1.0/24"]      # as baseline.Network writes them
//     now: 2026-01-05T10:00:00Z        # default: the event time
//     want: true
//
// The event uses the stable JSON form of schemas.Event, so the output of
// `nhisentry decode` can be pasted in as a case; without an identity it acts
// as "test:identity".
type testCase struct {
	name     string
	line     int
	event    schemas.Event
	window   baseline.Window
	learning bool
	history  baseline.Baseline
	now      time.Time
	want     bool
}

func (d *decoder) tests(n *yaml.Node, ruleID string) []testCase {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, ruleID, "tests must be a list, got %s", kindName(n))
		return nil
	}
	var out []testCase
	for _, tn := range n.Content {
		f := d.mapping(tn, ruleID, "test", "name", "event", "window", "learning", "baseline", "now", "want")
		if f == nil {
			continue
		}
		tc := testCase{line: tn.Line}
		ok := true
		if v := d.required(f, tn, ruleID, "name"); v != nil {
			tc.name, _ = d.scalar(v, ruleID, "test name")
		}
		if v := d.required(f, tn, ruleID, "want"); v != nil {
			ok = d.decode(v, ruleID, "want", &tc.want) && ok
		}
		if v := d.required(f, tn, ruleID, "event"); v != nil {
			ok = d.event(v, ruleID, &tc.event) && ok
		}
		if v := f["window"]; v != nil {
			ok = d.window(v, ruleID, &tc.window) && ok
		}
		if v := f["learning"]; v != nil {
			ok = d.decode(v, ruleID, "learning", &tc.learning) && ok
		}
		tc.now = tc.event.Time.Time
		if v := f["now"]; v != nil {
			ok = d.decode(v, ruleID, "now", &tc.now) && ok
		}
		tc.history = baseline.Baseline{Identity: tc.event.Identity, FirstSeen: tc.event.Time.Time}
		if v := f["baseline"]; v != nil {
			ok = d.history(v, ruleID, tc.event.Time.Time, &tc.history) && ok
		}
		if ok {
			out = append(out, tc)
		}
	}
	return out
}

// event decodes a test's event through its JSON form, refusing unknown
// fields so a misspelt key cannot make a case pass by accident.
func (d *decoder) event(n *yaml.Node, ruleID string, ev *schemas.Event) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, ruleID, "event must be a mapping, got %s", kindName(n))
		return false
	}
	var v any
	if !d.decode(n, ruleID, "event", &v) {
		return false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		d.errorf(n, ruleID, "event: %v", err)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		d.errorf(n, ruleID, "event: %v", err)
		return false
	}
	if ev.Identity.ID == "" {
		ev.Identity = schemas.Identity{ID: "test:identity", Kind: schemas.KindUnknown}
	}
	return true
}

func (d *decoder) window(n *yaml.Node, ruleID string, w *baseline.Window) bool {
	f := d.mapping(n, ruleID, "window", "count", "denied", "failures", "bytes_out")
	if f == nil {
		return false
	}
	ok := true
	for _, c := range []struct {
		key string
		dst *uint32
	}{{"count", &w.Count}, {"denied", &w.Denied}, {"failures", &w.Failures}} {
		if v := f[c.key]; v != nil {
			ok = d.decode(v, ruleID, "window."+c.key, c.dst) && ok
		}
	}
	if v := f["bytes_out"]; v != nil {
		ok = d.decode(v, ruleID, "window.bytes_out", &w.BytesOut) && ok
	}
	return ok
}

// history fills the baseline a test's profile is built from. Hourly counts end
// at the hour before the event's, and the profile starts with the first of
// them, so baseline.hourly_mean is exactly their mean.
func (d *decoder) history(n *yaml.Node, ruleID string, at time.Time, s *baseline.Baseline) bool {
	f := d.mapping(n, ruleID, "baseline", "events", "hourly", "actions", "peers", "networks")
	if f == nil {
		return false
	}
	var (
		hourly []uint32
		ok     = true
	)
	if v := f["hourly"]; v != nil {
		ok = d.decode(v, ruleID, "baseline.hourly", &hourly) && ok
	}
	end := hourOf(at)
	for i, c := range hourly {
		h := end - int64(len(hourly)) + int64(i)
		s.Recent = append(s.Recent, baseline.HourRollup{Hour: h, Events: uint64(c)})
		s.Events += uint64(c)
	}
	if len(hourly) > 0 {
		s.FirstSeen = time.Unix(s.Recent[0].Hour*3600, 0).UTC()
		s.LastSeen = time.Unix(end*3600-1, 0).UTC()
	}
	if v := f["events"]; v != nil {
		ok = d.decode(v, ruleID, "baseline.events", &s.Events) && ok
	}
	for dim, key := range [baseline.NumDims]string{baseline.DimAction: "actions", baseline.DimPeer: "peers", baseline.DimNetwork: "networks"} {
		v := f[key]
		if v == nil {
			continue
		}
		var vals []string
		if !d.decode(v, ruleID, "baseline."+key, &vals) {
			ok = false
			continue
		}
		ks := baseline.KnownSet{Dim: baseline.Dim(dim).String(), Stability: baseline.Stability{Size: len(vals)}}
		for _, val := range vals {
			ks.Values = append(ks.Values, baseline.KnownValue{Value: val, FirstSeen: s.FirstSeen, LastSeen: s.FirstSeen, Count: 1})
		}
		s.Known = append(s.Known, ks)
	}
	return ok
}

// input builds the detector input a test case describes. The profile is new
// for every run, so cases cannot leak state into each other.
func (tc *testCase) input() *detectors.Input {
	ev := tc.event
	p := new(baseline.Profile)
	p.Apply(&tc.history, baseline.DefaultClasses())
	return &detectors.Input{Event: &ev, Profile: p, Window: tc.window, Learning: tc.learning, Now: tc.now}
}

// TestResult is the outcome of one inline test case.
type TestResult struct {
	File   string
	Line   int // position of the test case in File
	RuleID string
	Name   string
	Want   bool
	Got    bool
	Err    error // evaluation error; Got is meaningless when set
}

// OK reports whether the case passed.
func (r TestResult) OK() bool { return r.Err == nil && r.Got == r.Want }

// String gives a one-line report such as
// "pack/default.yaml:14: denied-burst/fires on the tenth denial: got false, want true".
func (r TestResult) String() string {
	head := fmt.Sprintf("%s:%d: %s/%s", r.File, r.Line, r.RuleID, r.Name)
	switch {
	case r.Err != nil:
		return head + ": " + r.Err.Error()
	case r.OK():
		return head + ": ok"
	}
	return fmt.Sprintf("%s: got %t, want %t", head, r.Got, r.Want)
}

// RunTests evaluates every inline test case of every rule in s, in load
// order. Each case runs its own rule only, so a case documents that rule
// alone whatever else the set holds.
func RunTests(s *Set) []TestResult {
	var out []TestResult
	for _, r := range s.rules {
		for i := range r.tests {
			tc := &r.tests[i]
			act := newActivation(tc.input())
			got, err := r.eval(act)
			act.release()
			out = append(out, TestResult{File: r.file, Line: tc.line, RuleID: r.id, Name: tc.name, Want: tc.want, Got: got, Err: err})
		}
	}
	return out
}
