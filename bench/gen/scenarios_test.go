package gen

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// decodeRun is the project's own reading of a run: the events of every good
// record, decoded by the ingest decoder of the record's format, each with
// the identity its record's key names.
func decodeRun(t *testing.T, run run) []schemas.Event {
	t.Helper()
	decs := map[string]ingest.Decoder{}
	var evs []schemas.Event
	for i, r := range run.recs {
		if r.Malformed {
			continue
		}
		d := decs[r.Format]
		if d == nil {
			var err error
			if d, err = formats.ByName(r.Format); err != nil {
				t.Fatal(err)
			}
			decs[r.Format] = d
		}
		n := len(evs)
		var err error
		evs, err = d.Decode(evs, ingest.Record{Topic: r.Format, Offset: int64(i), Key: r.Key, Value: r.Value, Time: r.Time})
		if err != nil {
			t.Fatalf("record %d (%s) does not decode: %v: %.400s", i, r.Format, err, r.Value)
		}
		for _, ev := range evs[n:] {
			if ev.Identity.ID != string(r.Key) {
				t.Fatalf("record %d (%s) has key %s, decodes to identity %s", i, r.Format, r.Key, ev.Identity.ID)
			}
		}
	}
	return evs
}

// split returns the label identity's events before the label's window and
// inside it.
func split(evs []schemas.Event, l Label) (before, in []schemas.Event) {
	for _, ev := range evs {
		if ev.Identity.ID != l.Identity {
			continue
		}
		switch t := ev.Time.Time; {
		case t.Before(l.Start):
			before = append(before, ev)
		case !t.After(l.End):
			in = append(in, ev)
		}
	}
	return before, in
}

func net24(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	p, _ := a.Prefix(24)
	return p.String()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func set[T comparable](xs []schemas.Event, f func(schemas.Event) T) map[T]bool {
	m := map[T]bool{}
	for _, x := range xs {
		m[f(x)] = true
	}
	return m
}

func TestMoreScenarios(t *testing.T) {
	t.Parallel()
	week := 7 * 24 * time.Hour
	tests := []struct {
		scenario string
		identity string // prefix of the label's identity
		minLen   time.Duration
		maxLen   time.Duration
		check    func(t *testing.T, l Label, all, before, in []schemas.Event)
	}{
		{ScenarioClonedCredential, "aws:role/111122223333/", 10 * time.Minute, lenCloned,
			func(t *testing.T, l Label, _, before, in []schemas.Event) {
				creds := set(in, func(e schemas.Event) string { return e.Credential.ID })
				if len(creds) != 1 {
					t.Fatalf("window uses credentials %v, want one", creds)
				}
				own := set(before, func(e schemas.Event) string { return net24(e.Actor.IP) })
				nets := set(in, func(e schemas.Event) string { return net24(e.Actor.IP) })
				if len(nets) != 2 || !nets["198.51.100.0/24"] {
					t.Fatalf("window networks %v, want the role's and 198.51.100.0/24", nets)
				}
				// Interleaved: one use from each network within five minutes.
				close := false
				for i := 1; i < len(in); i++ {
					if net24(in[i].Actor.IP) != net24(in[i-1].Actor.IP) && in[i].Time.Time.Sub(in[i-1].Time.Time) <= 5*time.Minute {
						close = true
					}
				}
				for n := range nets {
					if n != "198.51.100.0/24" && !own[n] {
						t.Errorf("the role's side uses %s, not a network it used before", n)
					}
				}
				if !close {
					t.Error("no two uses from different networks within 5 minutes")
				}
			}},
		{ScenarioExfiltration, "spiffe://prod.example.org/ns/", time.Hour + 30*time.Minute, lenExfil,
			func(t *testing.T, l Label, _, before, in []schemas.Event) {
				hourly := func(evs []schemas.Event) map[time.Time]uint64 {
					m := map[time.Time]uint64{}
					for _, e := range evs {
						m[e.Time.Time.Truncate(time.Hour)] += e.BytesOut
					}
					return m
				}
				var usual uint64
				for _, b := range hourly(before) {
					usual = max(usual, b)
				}
				full := 0
				for h, b := range hourly(in) {
					if overlap := minTime(h.Add(time.Hour), l.End).Sub(maxTime(h, l.Start)); overlap < 45*time.Minute {
						continue // a short part of an hour at an edge of the window
					}
					full++
					if b < 100<<20 || b < 100*usual {
						t.Errorf("hour %v moved %d bytes out, want ≥ 100 MB and ≥ 100× the busiest earlier hour (%d)", h, b, usual)
					}
				}
				if full == 0 || len(before) < 50 {
					t.Fatalf("%d full hours in the window, %d earlier events", full, len(before))
				}
			}},
		{ScenarioDormant, "aws:role/111122223333/", time.Minute, lenDormant,
			func(t *testing.T, l Label, _, before, in []schemas.Event) {
				if len(before) < 10 || len(in) < 20 {
					t.Fatalf("%d events before, %d in the window", len(before), len(in))
				}
				last := before[len(before)-1].Time.Time
				if gap := l.Start.Sub(last); gap < 4*24*time.Hour {
					t.Errorf("silence before reactivation %v, want > 4 days", gap)
				}
				if c := baseline.DefaultClasses().Match(in[0].Identity); c.Name != "job" || c.Dormancy >= l.Start.Sub(last) {
					t.Errorf("class %s, dormancy %v: the silence must exceed it", c.Name, c.Dormancy)
				}
			}},
		{ScenarioRevokedToken, "k8s:sa/default/reporting/export-job", 5 * time.Minute, lenRevoked,
			func(t *testing.T, l Label, all, before, in []schemas.Event) {
				var revoked string
				var at time.Time
				for _, e := range all {
					if acc, ok := strings.CutPrefix(e.Target.Resource, "auth/token/revoke-accessor/"); ok {
						revoked, at = acc, e.Time.Time
						if !strings.HasPrefix(e.Identity.ID, "vault:entity/") || e.Outcome.Result != schemas.ResultSuccess {
							t.Errorf("revocation by %s, outcome %s", e.Identity.ID, e.Outcome.Result)
						}
					}
				}
				if revoked == "" || at.Before(l.Start) || at.After(l.Start.Add(time.Second)) {
					t.Fatalf("revocation of %q at %v, want one at the label start %v", revoked, at, l.Start)
				}
				if !set(before, func(e schemas.Event) string { return e.Credential.ID })[revoked] {
					t.Error("the revoked accessor was not the identity's credential before")
				}
				var ok, denied int
				for _, e := range all {
					if e.Credential.ID != revoked || !e.Time.Time.After(at) {
						continue
					}
					if e.Identity.ID != l.Identity || strings.HasPrefix(e.Actor.IP, "10.") || e.Time.Time.After(l.End) {
						t.Errorf("use after revocation by %s from %s at %v", e.Identity.ID, e.Actor.IP, e.Time)
					}
					switch e.Outcome.Result {
					case schemas.ResultSuccess:
						ok++
					case schemas.ResultDenied:
						denied++
					}
				}
				if ok != 2 || denied < 4 {
					t.Errorf("after revocation: %d successful and %d denied uses, want 2 and ≥ 4", ok, denied)
				}
				if len(set(in, func(e schemas.Event) string { return e.Actor.IP })) != 1 {
					t.Error("the uses come from more than one address")
				}
			}},
		{ScenarioLongTTLBurst, "k8s:sa/default/platform/deploy-bot", time.Minute, lenLongTTL,
			func(t *testing.T, l Label, _, before, in []schemas.Event) {
				var issued, usual int
				for _, e := range before {
					if e.Issuance != nil {
						usual++
						if e.Issuance.TTLSeconds > 24*3600 {
							t.Errorf("an earlier issuance has TTL %ds", e.Issuance.TTLSeconds)
						}
					}
				}
				creds := map[string]bool{}
				for _, e := range in {
					if is := e.Issuance; is != nil && is.TTLSeconds == longTTL {
						issued++
						creds[is.Credential] = true
					}
				}
				if issued < 20 || len(creds) != issued || usual < 5 {
					t.Errorf("%d long-TTL issuances (%d distinct) in the window after %d usual ones", issued, len(creds), usual)
				}
			}},
		{ScenarioCIRoleIAM, "aws:role/111122223333/ci-deployer", time.Minute, lenCI,
			func(t *testing.T, l Label, _, before, in []schemas.Event) {
				if c := baseline.DefaultClasses().Match(in[0].Identity); c.Name != "ci" {
					t.Fatalf("class %s, want ci", c.Name)
				}
				nets := set(before, func(e schemas.Event) string { return net24(e.Actor.IP) })
				uas := set(before, func(e schemas.Event) string { return e.Actor.UserAgent })
				if len(before) < 20 || len(nets) != 1 || !nets["10.8.0.0/24"] {
					t.Fatalf("%d pipeline events from %v", len(before), nets)
				}
				for _, e := range before {
					if h := e.Time.Time.Hour(); h < 8 || h >= 19 || e.Time.Time.Weekday() == time.Saturday || e.Time.Time.Weekday() == time.Sunday {
						t.Fatalf("pipeline call at %v, outside weekday hours", e.Time)
					}
				}
				actions := set(in, func(e schemas.Event) string { return e.Action })
				for _, a := range []string{"iam:CreateUser", "iam:CreateAccessKey", "iam:AttachRolePolicy"} {
					if !actions[a] {
						t.Errorf("no %s in the window: %v", a, actions)
					}
				}
				for _, e := range in {
					if nets[net24(e.Actor.IP)] || uas[e.Actor.UserAgent] || e.Outcome.Result != schemas.ResultSuccess {
						t.Errorf("%s from %s with %q (%s): want a successful call from a new network and client", e.Action, e.Actor.IP, e.Actor.UserAgent, e.Outcome.Result)
					}
					if h := e.Time.Time.Hour(); h >= 8 && h < 18 && e.Time.Time.Weekday() != time.Saturday && e.Time.Time.Weekday() != time.Sunday {
						t.Errorf("%s at %v, inside the pipeline's hours", e.Action, e.Time)
					}
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			run := generate(t, with(small, func(c *Config) { c.Scenarios, c.Malformed = []string{tt.scenario}, 4 }))
			if len(run.labels) != 1 {
				t.Fatalf("labels %v, want one", run.labels)
			}
			l := run.labels[0]
			if l.Scenario != tt.scenario || !strings.HasPrefix(l.Identity, tt.identity) || l.Detail == "" {
				t.Fatalf("label %+v, want scenario %s of an identity %s…", l, tt.scenario, tt.identity)
			}
			if d := l.End.Sub(l.Start); d < tt.minLen || d > tt.maxLen || l.Start.Before(DefaultStart.Add(week*4/7)) || l.End.After(DefaultStart.Add(week)) {
				t.Fatalf("window %v..%v (%v), want %v..%v late in the run", l.Start, l.End, d, tt.minLen, tt.maxLen)
			}
			all := decodeRun(t, run)
			before, in := split(all, l)
			if len(in) == 0 {
				t.Fatal("no event of the identity in the window")
			}
			tt.check(t, l, all, before, in)
		})
	}
}

// Selecting every scenario adds their records but changes none of the
// normal traffic, and each scenario's records and label are the same
// whichever others are selected.
func TestMoreScenariosIndependent(t *testing.T) {
	t.Parallel()
	cfg := with(small, func(c *Config) { c.Duration = 3 * 24 * time.Hour })
	plain := generate(t, cfg)
	all := generate(t, with(cfg, func(c *Config) { c.Scenarios = AllScenarios }))
	var names []string
	for _, l := range all.labels {
		names = append(names, l.Scenario)
	}
	if !slices.Equal(names, AllScenarios) {
		t.Fatalf("scenarios %v, want %v", names, AllScenarios)
	}
	values := func(r run) map[string]int {
		m := map[string]int{}
		for _, rec := range r.recs {
			m[string(rec.Value)]++
		}
		return m
	}
	have := values(all)
	for v, n := range values(plain) {
		if have[v] < n {
			t.Fatalf("normal record missing from the run with every scenario: %.200s", v)
		}
	}
	for _, s := range AllScenarios {
		one := generate(t, with(cfg, func(c *Config) { c.Scenarios = []string{s} }))
		for v, n := range values(one) {
			if have[v] < n {
				t.Fatalf("%s: record differs when every scenario is selected: %.200s", s, v)
			}
		}
		if i := slices.IndexFunc(all.labels, func(l Label) bool { return l.Scenario == s }); all.labels[i] != one.labels[0] {
			t.Errorf("%s: label %+v alone, %+v with the others", s, one.labels[0], all.labels[i])
		}
	}
}

func TestScenarioConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Scenarios: []string{"no_such_scenario"}},
		{Scenarios: []string{ScenarioExfiltration}, Workloads: 1},
		{Scenarios: []string{ScenarioPrivilegeProbing}, Roles: 1},
	} {
		if _, err := Generate(cfg, func(Record) error { return nil }); err == nil {
			t.Errorf("Generate(%+v) = nil error", cfg)
		}
	}
	// An empty, non-nil list injects nothing, even with Attacks set.
	labels, err := Generate(with(small, func(c *Config) { c.Attacks, c.Scenarios, c.Duration = true, []string{}, time.Hour }), func(Record) error { return nil })
	if err != nil || len(labels) != 0 {
		t.Fatalf("empty Scenarios: labels %v, err %v", labels, err)
	}
}
