package novelty_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/novelty"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestNewValue(t *testing.T) {
	now := time.Date(2026, 11, 9, 14, 30, 0, 0, time.UTC)
	known := []string{"s3:GetObject", "s3:PutObject", "sqs:SendMessage"}
	week := detectortest.History(now, 7*24, 3, "10.20.1.7", known...)
	young := detectortest.History(now, 6, 3, "10.20.1.7", known...)
	tests := []struct {
		name      string
		action    string
		ip        string
		wantDims  []string
		wantSev   schemas.Severity
		minScore  int
		wantQuiet bool
	}{
		{name: "known action from known network", action: "s3:GetObject", ip: "10.20.1.99", wantQuiet: true},
		{name: "new sensitive action on a stable set", action: "iam:CreateAccessKey", ip: "10.20.1.7",
			wantDims: []string{"action"}, wantSev: schemas.SeverityHigh, minScore: 95},
		{name: "new plain action on a stable set", action: "s3:ListBucket", ip: "10.20.1.7",
			wantDims: []string{"action"}, wantSev: schemas.SeverityMedium, minScore: 70},
		{name: "stolen credential: new network and new action", action: "secretsmanager:GetSecretValue", ip: "203.0.113.9",
			wantDims: []string{"action", "network"}, wantSev: schemas.SeverityHigh, minScore: 95},
	}
	d := novelty.New(novelty.DefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := detectortest.Event(now, tt.action, tt.ip)
			got := d.Detect(detectortest.Input(week, &ev), nil)
			if tt.wantQuiet {
				if len(got) != 0 {
					t.Fatalf("want no finding, got %+v", got)
				}
				return
			}
			if len(got) != len(tt.wantDims) {
				t.Fatalf("got %d findings, want %d: %+v", len(got), len(tt.wantDims), got)
			}
			for i, f := range got {
				if !strings.HasPrefix(f.Analysis.Observed, tt.wantDims[i]+"=") {
					t.Errorf("finding %d observed %q, want dimension %s", i, f.Analysis.Observed, tt.wantDims[i])
				}
				if f.Severity != tt.wantSev || f.Score < tt.minScore || f.Analysis.Pattern != schemas.PatternUnseen {
					t.Errorf("finding %d: severity %s score %d pattern %s", i, f.Severity, f.Score, f.Analysis.Pattern)
				}
				if f.ID != schemas.FindingID(novelty.Name, ev.Identity.ID, tt.wantDims[i], strings.TrimPrefix(f.Analysis.Observed, tt.wantDims[i]+"=")) {
					t.Errorf("finding id is not the deterministic one")
				}
			}
		})
	}
	t.Run("a plain value in a growing set is learned, not reported", func(t *testing.T) {
		p := detectortest.History(now, 7*24, 3, "10.20.1.7", known...)
		grow := detectortest.Event(now.Add(-time.Hour), "s3:HeadObject", "10.20.1.7")
		p.Observe(&grow)
		ev := detectortest.Event(now, "s3:ListBucket", "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("low-score value reported: %+v", got)
		}
		sens := detectortest.Event(now, "iam:PassRole", "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &sens), nil); len(got) != 1 {
			t.Fatalf("a sensitive value in a growing set must still be reported, got %d", len(got))
		}
	})
	t.Run("after a deploy a plain value is learned, a sensitive one reported", func(t *testing.T) {
		p := detectortest.History(now, 7*24, 3, "10.20.1.7", known...)
		ev := detectortest.Event(now, "s3:ListBucket", "10.20.1.7")
		in := detectortest.Input(p, &ev)
		in.Relearning = true
		if got := d.Detect(in, nil); len(got) != 0 {
			t.Fatalf("a new release's plain action was reported: %+v", got)
		}
		sens := detectortest.Event(now, "iam:PassRole", "10.20.1.7")
		in = detectortest.Input(p, &sens)
		in.Relearning = true
		if got := d.Detect(in, nil); len(got) != 1 || got[0].Severity != schemas.SeverityMedium {
			t.Fatalf("a sensitive first use during re-learning: %+v", got)
		}
	})
	t.Run("a mesh route on a logged peer is the mesh graph's edge", func(t *testing.T) {
		for _, tt := range []struct {
			name, peer string
			want       int
		}{
			{"peer logged", "spiffe://prod.example/ns/pay/sa/payments", 0},
			{"no peer logged", "", 1},
		} {
			ev := detectortest.Event(now, "POST /v1/refunds", "10.20.1.7")
			ev.Source.Family, ev.Target.Peer = schemas.FamilyMesh, tt.peer
			got := d.Detect(detectortest.Input(week, &ev), nil)
			var actions int
			for _, f := range got {
				if strings.HasPrefix(f.Analysis.Observed, "action=") {
					actions++
				}
			}
			if actions != tt.want {
				t.Errorf("%s: %d new-action findings, want %d: %+v", tt.name, actions, tt.want, got)
			}
		}
	})
	t.Run("quiet while learning", func(t *testing.T) {
		ev := detectortest.Event(now, "iam:CreateAccessKey", "203.0.113.9")
		if got := d.Detect(detectortest.Input(young, &ev), nil); len(got) != 0 {
			t.Fatalf("learning identity raised %+v", got)
		}
	})
	t.Run("a value is new once", func(t *testing.T) {
		p := detectortest.History(now, 7*24, 3, "10.20.1.7", known...)
		ev := detectortest.Event(now, "s3:ListBucket", "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 1 {
			t.Fatalf("first use: %d findings", len(got))
		}
		p.Observe(&ev)
		ev2 := detectortest.Event(now.Add(time.Minute), "s3:ListBucket", "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev2), nil); len(got) != 0 {
			t.Fatalf("second use raised %+v", got)
		}
	})
}
