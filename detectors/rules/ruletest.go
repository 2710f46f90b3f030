package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// testCase is one inline test of a rule (doc.go describes every key):
//
//   - name: fires on the tenth denial
//     event: {action: "iam:ListRoles", outcome: {result: denied}}  # Event JSON form
//     window: {count: 12, denied: 10}  # default: as the engine counts it
//     learning: false                  # default: from the history, else false
//     baseline: {actions: [...], hourly: [...], model: {...}}  # a stored baseline
//     history: [events...] | {generate: {days: 7, per_hour: 3, actions: [...]}}
//     cohort: {members: 5, actions: {"k8s:get:secrets": 4}}
//     now: 2026-01-05T10:00:00Z        # default: the event time
//     want: true
//
// The event uses the stable JSON form of schemas.Event, so the output of
// `nhisentry decode` can be pasted in as a case; without an identity it acts
// as "test:identity".
type testCase struct {
	name       string
	line       int
	event      schemas.Event
	window     *baseline.Window // nil: the engine's count, this event included
	learning   *bool            // nil: the profile's state with a history, else false
	relearning *bool            // nil: the profile's state (a deploy in the history)
	class      string
	stored     *baseline.Baseline // from `baseline:`
	history    []schemas.Event    // from `history:`, in order
	cohort     *baseline.CohortBaseline
	now        time.Time
	want       bool
}

// DefaultTestTime is when a test event without a time happens: a Monday
// morning, so hour-of-week and business-hours logic has a definite answer.
var DefaultTestTime = time.Date(2026, time.January, 5, 10, 15, 0, 0, time.UTC)

var testKeys = []string{"name", "event", "window", "learning", "relearning", "class", "baseline", "history", "cohort", "now", "want"}

func (d *decoder) tests(n *yaml.Node, ruleID string) []testCase {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, ruleID, "tests must be a list, got %s", kindName(n))
		return nil
	}
	var out []testCase
	for _, tn := range n.Content {
		f := d.mapping(tn, ruleID, "test", testKeys...)
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
			ok = d.event(v, ruleID, "event", &tc.event) && ok
			if tc.event.Identity.ID == "" {
				tc.event.Identity = schemas.Identity{ID: "test:identity", Kind: schemas.KindUnknown}
			}
			if tc.event.Time.IsZero() {
				tc.event.Time = schemas.At(DefaultTestTime)
			}
		}
		if v := f["window"]; v != nil {
			tc.window = new(baseline.Window)
			ok = d.window(v, ruleID, tc.window) && ok
		}
		for key, dst := range map[string]**bool{"learning": &tc.learning, "relearning": &tc.relearning} {
			if v := f[key]; v != nil {
				*dst = new(bool)
				ok = d.decode(v, ruleID, key, *dst) && ok
			}
		}
		if v := f["class"]; v != nil {
			if c, good := d.scalar(v, ruleID, "class"); good {
				if !slices.ContainsFunc(baseline.DefaultClasses(), func(x baseline.Class) bool { return x.Name == c }) {
					d.errorf(v, ruleID, "class %q is not one of the default classes (%s)", c, classNames())
					ok = false
				}
				tc.class = c
			}
		}
		tc.now = tc.event.Time.Time
		if v := f["now"]; v != nil {
			ok = d.decode(v, ruleID, "now", &tc.now) && ok
		}
		if v := f["baseline"]; v != nil {
			tc.stored = &baseline.Baseline{Identity: tc.event.Identity, FirstSeen: tc.event.Time.Time}
			ok = d.history(v, ruleID, tc.event.Time.Time, tc.stored) && ok
		}
		if v := f["history"]; v != nil {
			ok = d.eventHistory(v, ruleID, &tc) && ok
		}
		if v := f["cohort"]; v != nil {
			ok = d.cohort(v, ruleID, &tc) && ok
		}
		if ok {
			out = append(out, tc)
		}
	}
	return out
}

func classNames() string {
	var names []string
	for _, c := range baseline.DefaultClasses() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// event decodes a test's event through its JSON form, refusing unknown
// fields so a misspelt key cannot make a case pass by accident.
func (d *decoder) event(n *yaml.Node, ruleID, key string, ev *schemas.Event) bool {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, ruleID, "%s must be a mapping, got %s", key, kindName(n))
		return false
	}
	var v any
	if !d.decode(n, ruleID, key, &v) {
		return false
	}
	raw, err := json.Marshal(v)
	if err != nil {
		d.errorf(n, ruleID, "%s: %v", key, err)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		d.errorf(n, ruleID, "%s: %v", key, err)
		return false
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

// knownKeys are the `baseline:` keys that list known values, by dimension.
var knownKeys = [baseline.NumDims]string{
	baseline.DimAction: "actions", baseline.DimResource: "resources", baseline.DimPeer: "peers",
	baseline.DimNetwork: "networks", baseline.DimUserAgent: "user_agents", baseline.DimRegion: "regions",
	baseline.DimCluster: "clusters", baseline.DimIssuer: "issuers", baseline.DimCredential: "credentials",
	baseline.DimEdge: "edges",
}

// history fills the stored baseline a test's profile starts from. Hourly
// counts end at the hour before the event's, and the profile starts with the
// first of them, so baseline.hourly_mean is exactly their mean. A `model:`
// gives the built statistics (baseline.has_model and what derives from it).
func (d *decoder) history(n *yaml.Node, ruleID string, at time.Time, s *baseline.Baseline) bool {
	keys := append([]string{"events", "hourly", "model"}, knownKeys[:]...)
	f := d.mapping(n, ruleID, "baseline", keys...)
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
	for dim, key := range knownKeys {
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
	if v := f["model"]; v != nil {
		ok = d.model(v, ruleID, at, s) && ok
	}
	return ok
}

// model fills the statistics a rebuild computes, as a `baseline: {model:
// {...}}` gives them; the model describes the data up to the event's hour.
func (d *decoder) model(n *yaml.Node, ruleID string, at time.Time, s *baseline.Baseline) bool {
	f := d.mapping(n, ruleID, "baseline.model", "hourly_centre", "hourly_spread", "active_share", "denied_ratio", "failure_ratio",
		"bytes_out_p50", "bytes_out_p90", "bytes_out_p99", "bytes_out_max", "issuance_ttl", "fan_in")
	if f == nil {
		return false
	}
	ok := true
	num := func(key string, dst *float64) {
		if v := f[key]; v != nil {
			ok = d.decode(v, ruleID, "baseline.model."+key, dst) && ok
		}
	}
	var centre, spread, active float64
	num("hourly_centre", &centre)
	num("hourly_spread", &spread)
	num("active_share", &active)
	for h := range baseline.HoursPerWeek {
		s.Rate.Centre[h], s.Rate.Spread[h] = centre, spread
	}
	for h := range s.Activity.HourOfDay {
		s.Activity.HourOfDay[h] = active
	}
	num("denied_ratio", &s.Outcome.DeniedRatio)
	num("failure_ratio", &s.Outcome.FailureRatio)
	num("bytes_out_p50", &s.BytesOut.P50)
	num("bytes_out_p90", &s.BytesOut.P90)
	num("bytes_out_p99", &s.BytesOut.P99)
	num("bytes_out_max", &s.BytesOut.Max)
	var ttl float64
	num("issuance_ttl", &ttl)
	if ttl > 0 {
		s.Issuance = &baseline.IssuanceProfile{TTL: ttl}
	}
	if v := f["fan_in"]; v != nil {
		s.Graph = &baseline.Graph{}
		ok = d.decode(v, ruleID, "baseline.model.fan_in", &s.Graph.FanIn) && ok
	}
	s.DataThrough = at.Truncate(time.Hour)
	return ok
}

// eventHistory reads `history:`: a list of events in the Event JSON form,
// folded into the profile in order, or `{generate: {...}}`, the identity's
// regular traffic before the event.
func (d *decoder) eventHistory(n *yaml.Node, ruleID string, tc *testCase) bool {
	switch n.Kind {
	case yaml.SequenceNode:
		ok := true
		for i, en := range n.Content {
			var ev schemas.Event
			if !d.event(en, ruleID, fmt.Sprintf("history[%d]", i), &ev) {
				ok = false
				continue
			}
			if ev.Identity.ID == "" {
				ev.Identity = tc.event.Identity
			}
			if ev.Time.IsZero() {
				// Unnamed times: a minute apart, ending a minute before
				// the event.
				ev.Time = schemas.At(tc.event.Time.Add(-time.Duration(len(n.Content)-i) * time.Minute))
			}
			if ev.ID == "" {
				ev.ID = fmt.Sprintf("history-%d", i)
			}
			tc.history = append(tc.history, ev)
		}
		return ok
	case yaml.MappingNode:
		f := d.mapping(n, ruleID, "history", "generate")
		if f == nil {
			return false
		}
		g := d.required(f, n, ruleID, "generate")
		if g == nil {
			return false
		}
		return d.generate(g, ruleID, tc)
	}
	d.errorf(n, ruleID, "history must be a list of events or {generate: {...}}, got %s", kindName(n))
	return false
}

// generate reads a generator spec and makes the events it describes: for
// each of the `days`×24 hours before the event's hour, `per_hour` events of
// the test event's identity, source and workload, cycling through actions,
// networks (a CIDR prefix or an address; events come from addresses inside
// it), peers and user agents, each defaulting to the test event's own value.
func (d *decoder) generate(n *yaml.Node, ruleID string, tc *testCase) bool {
	f := d.mapping(n, ruleID, "history.generate", "days", "per_hour", "actions", "networks", "peers", "user_agents")
	if f == nil {
		return false
	}
	days, perHour := 7, 3
	ok := true
	if v := f["days"]; v != nil {
		ok = d.decode(v, ruleID, "history.generate.days", &days) && ok
	}
	if v := f["per_hour"]; v != nil {
		ok = d.decode(v, ruleID, "history.generate.per_hour", &perHour) && ok
	}
	if days < 1 || days > 60 || perHour < 1 || perHour > 60 {
		d.errorf(n, ruleID, "history.generate: days must be 1–60 and per_hour 1–60")
		return false
	}
	ev := &tc.event
	list := func(key, def string) []string {
		var vals []string
		if v := f[key]; v != nil {
			if !d.decode(v, ruleID, "history.generate."+key, &vals) {
				ok = false
			}
		}
		if len(vals) == 0 {
			vals = []string{def}
		}
		return vals
	}
	actions := list("actions", ev.Action)
	peers := list("peers", ev.Target.Peer)
	agents := list("user_agents", ev.Actor.UserAgent)
	var nets []netip.Prefix
	for _, s := range list("networks", ev.Actor.IP) {
		if s == "" {
			nets = append(nets, netip.Prefix{})
			continue
		}
		p, err := parseCIDR(s)
		if err != nil {
			d.errorf(f["networks"], ruleID, "history.generate.networks: %v", err)
			return false
		}
		nets = append(nets, p)
	}
	if !ok {
		return false
	}
	start := ev.Time.Truncate(time.Hour).Add(-time.Duration(days) * 24 * time.Hour)
	k := 0
	for h := range days * 24 {
		for i := range perHour {
			at := start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Hour/time.Duration(perHour))
			g := schemas.Event{
				ID: fmt.Sprintf("generated-%d", k), Time: schemas.At(at), Source: ev.Source, Identity: ev.Identity,
				Credential: schemas.Credential{ID: ev.Credential.ID, Type: ev.Credential.Type},
				Actor:      schemas.Actor{UserAgent: agents[k%len(agents)], Workload: ev.Actor.Workload, Namespace: ev.Actor.Namespace},
				Action:     actions[k%len(actions)], Service: ev.Service,
				Target:  schemas.Target{Peer: peers[k%len(peers)]},
				Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
			}
			if p := nets[k%len(nets)]; p.IsValid() {
				g.Actor.IP = hostIn(p, k).String()
			}
			tc.history = append(tc.history, g)
			k++
		}
	}
	return true
}

// hostIn is the k-th address of p (wrapping within it), skipping the
// network address of prefixes that have one.
func hostIn(p netip.Prefix, k int) netip.Addr {
	a := p.Addr()
	hostBits := a.BitLen() - p.Bits()
	if hostBits == 0 {
		return a
	}
	n := 254
	if hostBits < 8 {
		n = 1<<hostBits - 1
	}
	for range 1 + k%n {
		a = a.Next()
	}
	return a
}

// cohort reads `cohort:`, the baseline of the identity's cohort: how many
// members it has, their median rate, and how many use each action.
func (d *decoder) cohort(n *yaml.Node, ruleID string, tc *testCase) bool {
	f := d.mapping(n, ruleID, "cohort", "members", "rate", "actions")
	if f == nil {
		return false
	}
	c := &baseline.CohortBaseline{Size: 2, Actions: map[string]int{}}
	ok := true
	if v := f["members"]; v != nil {
		ok = d.decode(v, ruleID, "cohort.members", &c.Size) && ok
	}
	if v := f["rate"]; v != nil {
		ok = d.decode(v, ruleID, "cohort.rate", &c.Rate) && ok
	}
	if v := f["actions"]; v != nil {
		ok = d.decode(v, ruleID, "cohort.actions", &c.Actions) && ok
	}
	tc.cohort = c
	return ok
}

// input builds the detector input a test case describes the way the
// engine does: a cache holding the stored baseline and cohort, the history
// observed in order, then the input for the event. The cache is new for
// every run, so cases cannot leak state into each other.
func (tc *testCase) input() *detectors.Input {
	ev := tc.event
	c := baseline.NewCache(baseline.CacheOptions{})
	var bs []*baseline.Baseline
	if tc.stored != nil || tc.class != "" || tc.cohort != nil {
		b := &baseline.Baseline{Identity: ev.Identity}
		if tc.stored != nil {
			cp := *tc.stored
			b = &cp
		}
		b.Class = tc.class
		if tc.cohort != nil {
			key := baseline.CohortOf(ev.Identity, ev.Actor.Namespace, ev.Actor.Workload)
			if key == "" {
				key = "test:" + ev.Identity.ID
			}
			b.Cohort = key
			stats := *tc.cohort
			stats.Cohort = key
			bs = append(bs, &baseline.Baseline{Identity: schemas.Identity{ID: baseline.CohortPrefix + key}, CohortStats: &stats})
		}
		bs = append(bs, b)
	}
	c.Apply(bs)
	c.Lock()
	defer c.Unlock()
	for i := range tc.history {
		h := tc.history[i]
		c.Observe(c.Get(h.Identity), &h)
	}
	p := c.Get(ev.Identity)
	in := detectors.NewInput(p, &ev, tc.now)
	in.Cohort = c.Cohort(p)
	if tc.window != nil {
		in.Window = *tc.window
	}
	switch {
	case tc.learning != nil:
		in.Learning = *tc.learning
	case len(tc.history) == 0:
		in.Learning = false
	}
	if tc.relearning != nil {
		in.Relearning = *tc.relearning
	}
	return &in
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

// String gives a one-line report: the case's place, rule and name, then
// PASS or FAIL with what was got and wanted, as in
// "pack/default.yaml:14: denied-burst / fires on the tenth denial: FAIL: got false, want true".
func (r TestResult) String() string {
	head := fmt.Sprintf("%s:%d: %s / %s", r.File, r.Line, r.RuleID, r.Name)
	switch {
	case r.Err != nil:
		return head + ": FAIL: error: " + r.Err.Error()
	case r.OK():
		return head + ": PASS"
	}
	return fmt.Sprintf("%s: FAIL: got %t, want %t", head, r.Got, r.Want)
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
