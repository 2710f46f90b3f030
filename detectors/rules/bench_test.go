package rules

import (
	"fmt"
	"testing"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
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
			dst := make([]schemas.Finding, 0, 8)
			b.ReportAllocs()
			for b.Loop() {
				dst = s.Detect(in, dst[:0])
			}
			if s.Errors() != 0 {
				b.Fatalf("%d evaluation errors", s.Errors())
			}
		})
	}
}
