package rules

import (
	"fmt"
	"testing"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
	"github.com/nhisentry/nhisentry/schemas"
)

// BenchmarkDetect evaluates the 20 rules of testdata/bench.yaml on one event
// against a week of history. "quiet" is the common case (a known read, no
// rule fires); "match" is an unknown IAM write in a denial burst, which
// evaluates every clause of the IAM rule and builds three findings.
func BenchmarkDetect(b *testing.B) {
	s := mustLoad(b, Options{}, "testdata/bench.yaml")
	if s.Len() != 20 {
		b.Fatalf("bench.yaml has %d rules, want 20", s.Len())
	}
	hourly := make([]uint32, baseline.HistoryHours)
	for i := range hourly {
		hourly[i] = uint32(40 + i%24)
	}
	actions := make([]string, 50)
	for i := range actions {
		actions[i] = fmt.Sprintf("s3:Action%d", i)
	}
	actions = append(actions, "s3:GetObject")
	p := profile(role, hourly, actions, []string{"10.0.1.0/24"})

	cases := []struct {
		name   string
		action string
		result schemas.Result
		window baseline.Window
		fires  int
	}{
		{"quiet", "s3:GetObject", schemas.ResultSuccess, baseline.Window{Count: 42, BytesOut: 1 << 20}, 0},
		{"match", "iam:AttachRolePolicy", schemas.ResultDenied, baseline.Window{Count: 60, Denied: 40}, 3},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ev := &schemas.Event{
				ID: "ev-1", Time: schemas.At(t0), Identity: role, Action: c.action, Service: "iam.amazonaws.com",
				Source:  schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail", Account: "123456789012", Region: "eu-west-1"},
				Actor:   schemas.Actor{IP: "10.0.1.7", UserAgent: "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.26.8"},
				Outcome: schemas.Outcome{Result: c.result, Status: 200},
			}
			if c.result == schemas.ResultDenied {
				ev.Outcome.Status = 403
			}
			in := &detectors.Input{Event: ev, Profile: p, Window: c.window, Now: t0}
			if got := s.Detect(in, nil); len(got) != c.fires {
				b.Fatalf("fired %v, want %d findings", ruleIDs(got), c.fires)
			}
			timeSet(b, s, in)
		})
	}
}

// quietEvents are ordinary events of each family, known to their profile,
// on which no rule of the default pack matches: the common case a pack is
// evaluated on.
func quietEvents() map[string]*schemas.Event {
	return map[string]*schemas.Event{
		"cloudtrail": {
			ID: "ct-1", Time: schemas.At(t0), Identity: role, Action: "s3:GetObject", Service: "s3.amazonaws.com",
			Source:     schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail", Provider: "aws", Account: "123456789012", Region: "eu-west-1"},
			Credential: schemas.Credential{ID: "ASIAEXAMPLE", Type: "aws_sts"},
			Actor:      schemas.Actor{IP: "10.0.1.7", UserAgent: "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.26.8", Session: "i-0abc123def4567890"},
			Target:     schemas.Target{Resource: "arn:aws:s3:::acme-data/exports/1.json"},
			Outcome:    schemas.Outcome{Result: schemas.ResultSuccess, Status: 200},
			BytesOut:   4096,
		},
		"mesh": {
			ID: "m-1", Time: schemas.At(t0), Identity: schemas.Identity{ID: "spiffe://prod.example.org/ns/payments/sa/api", Kind: schemas.KindWorkload},
			Action: "GET /v1/orders/{id}", Source: schemas.Source{Family: schemas.FamilyMesh, Format: "envoy_json"},
			Actor:   schemas.Actor{IP: "10.0.1.9", UserAgent: "grpc-go/1.64.0", Namespace: "payments", Workload: "api-7d9f8b6c4-x2k9p"},
			Target:  schemas.Target{Peer: "spiffe://prod.example.org/ns/orders/sa/api"},
			Outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, BytesOut: 1800,
		},
		"vault": {
			ID: "v-1", Time: schemas.At(t0), Identity: schemas.Identity{ID: "k8s:sa/default/payments/api", Kind: schemas.KindServiceAccount, Name: "payments/api"},
			Action: "vault:read:secret/data/payments/db", Source: schemas.Source{Family: schemas.FamilyIssuance, Format: "vault_audit", Provider: "vault"},
			Credential: schemas.Credential{ID: "hmac-sha256:ab12", Type: "vault_token"},
			Actor:      schemas.Actor{IP: "10.0.1.9"}, Target: schemas.Target{Resource: "secret/data/payments/db"},
			Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
		},
	}
}

// quietInput is the input for ev against a week of history in which its
// action, network and peer are known.
func quietInput(ev *schemas.Event) *detectors.Input {
	hourly := make([]uint32, baseline.HistoryHours)
	for i := range hourly {
		hourly[i] = uint32(40 + i%24)
	}
	p := profile(ev.Identity, hourly, []string{ev.Action}, []string{baseline.Network(ev.Actor.IP)})
	if ev.Target.Peer != "" {
		p.Apply(&baseline.Baseline{Known: []baseline.KnownSet{{Dim: "peer", Stability: baseline.Stability{Size: 1},
			Values: []baseline.KnownValue{{Value: ev.Target.Peer}}}}}, baseline.DefaultClasses())
	}
	return &detectors.Input{Event: ev, Profile: p, Window: baseline.Window{Count: 42, BytesOut: 1 << 20}, Now: t0}
}

// BenchmarkRule evaluates each rule of the default pack alone on a quiet
// CloudTrail event, with a fresh activation per evaluation as the first
// rule of an event gets it (later rules reuse the variables it resolved):
// the per-rule ns/op and allocs/op.
func BenchmarkRule(b *testing.B) {
	s, err := Options{}.LoadData("pack/default.yaml", pack.Default)
	if err != nil {
		b.Fatal(err)
	}
	in := quietInput(quietEvents()["cloudtrail"])
	for _, r := range s.rules {
		b.Run(r.id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				act := newActivation(in)
				match, err := r.eval(act)
				act.release()
				if match || err != nil {
					b.Fatalf("matched %t, error %v on a quiet event", match, err)
				}
			}
		})
	}
}

// BenchmarkPack evaluates the whole default pack per event: quiet events of
// three families, and a matching one (a denied IAM write in a burst).
func BenchmarkPack(b *testing.B) {
	s, err := Options{}.LoadData("pack/default.yaml", pack.Default)
	if err != nil {
		b.Fatal(err)
	}
	inputs := map[string]*detectors.Input{}
	for name, ev := range quietEvents() {
		inputs["quiet-"+name] = quietInput(ev)
	}
	match := *quietEvents()["cloudtrail"]
	match.Action, match.Outcome = "iam:CreateUser", schemas.Outcome{Result: schemas.ResultDenied, Status: 403}
	m := quietInput(&match)
	m.Window = baseline.Window{Count: 60, Denied: 40, NewActions: 12}
	inputs["match"] = m
	for _, name := range []string{"quiet-cloudtrail", "quiet-mesh", "quiet-vault", "match"} {
		in := inputs[name]
		b.Run(name, func(b *testing.B) {
			got := s.Detect(in, nil)
			if (name == "match") != (len(got) > 0) {
				b.Fatalf("%s: fired %v", name, ruleIDs(got))
			}
			timeSet(b, s, in)
		})
	}
}

// timeSet times s on in and fails b on evaluation errors.
func timeSet(b *testing.B, s *Set, in *detectors.Input) {
	b.Helper()
	dst := make([]schemas.Finding, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Detect(in, dst[:0])
	}
	if s.Errors() != 0 {
		b.Fatalf("%d evaluation errors", s.Errors())
	}
}
