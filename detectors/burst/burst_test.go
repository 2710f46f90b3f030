package burst_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/burst"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

// t0 is a Monday midnight: histories end there, the judged traffic starts.
var t0 = time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)

// outcomes marks events denied with probability denied and failed with
// probability failed.
func outcomes(denied, failed float64) func(*schemas.Event, *rand.Rand) {
	return func(ev *schemas.Event, r *rand.Rand) {
		switch u := r.Float64(); {
		case u < denied:
			ev.Outcome = schemas.Outcome{Result: schemas.ResultDenied, Status: 403, ErrorCode: "AccessDenied"}
		case u < denied+failed:
			ev.Outcome = schemas.Outcome{Result: schemas.ResultFailure, Status: 500, ErrorCode: "InternalError"}
		}
	}
}

// probing is the generator's privilege-probing scenario (bench/gen
// attacks.go): 40 calls in 20 minutes from start across 27 IAM, EC2, S3,
// secrets and KMS actions, all but three denied.
func probing(start time.Time) []schemas.Event {
	probe := []string{
		"sts:GetCallerIdentity", "iam:ListUsers", "iam:ListRoles", "iam:GetAccountAuthorizationDetails",
		"iam:ListAttachedRolePolicies", "iam:ListAccessKeys", "iam:CreateUser", "iam:CreateAccessKey",
		"iam:AttachRolePolicy", "iam:PutRolePolicy", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
		"ec2:DescribeSnapshots", "ec2:CreateKeyPair", "ec2:RunInstances", "s3:ListBuckets", "s3:GetBucketPolicy",
		"s3:PutBucketPolicy", "s3:GetBucketAcl", "secretsmanager:ListSecrets", "secretsmanager:GetSecretValue",
		"kms:ListKeys", "kms:CreateGrant", "lambda:ListFunctions20150331", "ssm:GetParameters",
		"organizations:DescribeOrganization", "cloudtrail:DescribeTrails",
	}
	r := rand.New(rand.NewPCG(42, 42))
	seq := slices.Clone(probe)
	for len(seq) < 40 {
		seq = append(seq, probe[1+r.IntN(len(probe)-1)])
	}
	var evs []schemas.Event
	for i, a := range seq {
		ev := detectortest.Event(start.Add(time.Duration(i)*30*time.Second), a, detectortest.IP)
		if a != "sts:GetCallerIdentity" && a != "s3:GetBucketAcl" && a != "ec2:DescribeSecurityGroups" {
			ev.Outcome = schemas.Outcome{Result: schemas.ResultDenied, Status: 403, ErrorCode: "AccessDenied"}
		}
		evs = append(evs, ev)
	}
	return evs
}

// failing is n failed calls in the 10 minutes from start.
func failing(start time.Time, n int) []schemas.Event {
	var evs []schemas.Event
	for i := range n {
		ev := detectortest.Event(start.Add(time.Duration(i)*10*time.Minute/time.Duration(n)), "dynamodb:Query", detectortest.IP)
		ev.Outcome = schemas.Outcome{Result: schemas.ResultFailure, Status: 400, ErrorCode: "ResourceNotFoundException"}
		evs = append(evs, ev)
	}
	return evs
}

func hourID(kind string, t time.Time) string {
	return schemas.FindingID(burst.Name, detectortest.Identity.ID, kind, strconv.FormatInt(t.Unix()/3600, 10))
}

func TestBurst(t *testing.T) {
	probeAt := t0.Add(26*time.Hour + 40*time.Minute) // Tuesday 02:40
	type finding struct {
		kind string
		at   time.Time
		sev  schemas.Severity
	}
	// zeroBaseline is three days of calls and an empty built baseline: a
	// denied ratio of zero.
	zeroBaseline := func(testing.TB) *baseline.Profile {
		p := detectortest.History(probeAt.Add(-time.Hour), 72, 2, detectortest.IP, detectortest.Actions...)
		p.Apply(&baseline.Baseline{DataThrough: probeAt.Add(-time.Hour)}, baseline.DefaultClasses())
		return p
	}
	tests := []detectortest.Case[finding]{
		{
			Name: "privilege probing on a quiet role",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Flat(1.5), outcomes(0.0015, 0.001)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(2, t0, t0.Add(72*time.Hour), detectortest.Flat(1.5), outcomes(0.0015, 0.001)), probing(probeAt)),
			Want:   []finding{{burst.KindDenied, probeAt, schemas.SeverityHigh}},
		},
		{
			Name: "privilege probing on a busy service",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(3, t0.Add(-14*24*time.Hour), t0, detectortest.Daily(40, 300), outcomes(0.03, 0.005)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(4, t0, t0.Add(48*time.Hour), detectortest.Daily(40, 300), outcomes(0.03, 0.005)), probing(probeAt)),
			Want:   []finding{{burst.KindDenied, probeAt, schemas.SeverityHigh}},
		},
		{
			Name: "steady trickle of 403s on a seasonal service stays quiet for a week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(5, t0.Add(-21*24*time.Hour), t0, detectortest.Daily(30, 250), outcomes(0.05, 0.01)), t0)
			},
			Judged: detectortest.Traffic(6, t0, t0.Add(7*24*time.Hour), detectortest.Daily(30, 250), outcomes(0.05, 0.01)),
		},
		{
			Name: "rare 403s with no denial history stay quiet for a week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(7, t0.Add(-21*24*time.Hour), t0, detectortest.Daily(5, 60), nil), t0)
			},
			Judged: detectortest.Traffic(8, t0, t0.Add(7*24*time.Hour), detectortest.Daily(5, 60), outcomes(0.003, 0.003)),
		},
		{
			Name: "error burst",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(9, t0.Add(-14*24*time.Hour), t0, detectortest.Flat(6), outcomes(0.001, 0.002)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(10, t0, t0.Add(48*time.Hour), detectortest.Flat(6), outcomes(0.001, 0.002)), failing(probeAt, 30)),
			Want:   []finding{{burst.KindError, probeAt, schemas.SeverityLow}},
		},
		{
			Name: "no built baseline yet: probing still fires on the absolute floor",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(probeAt.Add(-time.Hour), 72, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: probing(probeAt),
			Want:   []finding{{burst.KindDenied, probeAt, schemas.SeverityHigh}},
		},
		{
			Name: "no built baseline yet: a 2% trickle stays quiet",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(t0, 72, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: detectortest.Traffic(11, t0, t0.Add(48*time.Hour), detectortest.Flat(300), outcomes(0.02, 0.02)),
		},
		{
			Name:    "zero baseline ratio is floored: 10 denials of 12 calls fire",
			Profile: zeroBaseline,
			Judged:  probing(probeAt)[:12],
			Want:    []finding{{burst.KindDenied, probeAt, schemas.SeverityHigh}},
		},
		{
			Name:    "under min_count stays quiet",
			Profile: zeroBaseline,
			Judged:  probing(probeAt)[:9],
		},
		{
			Name: "identity still learning",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(probeAt.Add(-time.Hour), 10, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: probing(probeAt),
		},
		{
			Name:    "first event ever",
			Profile: detectortest.FirstEver,
			Judged:  probing(probeAt),
		},
	}
	d := burst.New(burst.DefaultConfig())
	detectortest.RunCases(t, d, tests, func(t *testing.T, f *schemas.Finding, w finding) {
		if id := hourID(w.kind, w.at); f.ID != id {
			t.Errorf("finding id %s, want the identity-hour-kind id %s", f.ID, id)
		}
		if f.Severity != w.sev || f.Detector != burst.Name || f.Analysis.Pattern != schemas.PatternSurge ||
			f.Score < 50 || f.Score > 100 || len(f.EventIDs) != 1 || f.Explanation == "" {
			t.Errorf("finding %+v", *f)
		}
		wantTech := map[string]string{burst.KindDenied: "T1069", burst.KindError: "T1580"}[w.kind]
		if f.Technique != wantTech {
			t.Errorf("technique %s, want %s", f.Technique, wantTech)
		}
	})
}

// TestRelearning: a denial burst just after a deploy is reported a step
// lower, since a release missing a permission is the likelier cause.
func TestRelearning(t *testing.T) {
	probeAt := t0.Add(26*time.Hour + 40*time.Minute)
	p := detectortest.Trained(t, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Flat(1.5), outcomes(0.0015, 0)), t0)
	got := detectortest.Run(burst.New(burst.DefaultConfig()), p, probing(probeAt), detectortest.Relearning)
	if len(got) != 1 || got[0].Severity != schemas.SeverityMedium {
		t.Fatalf("got %+v, want one medium finding", got)
	}
}

func TestKinds(t *testing.T) {
	probeAt := t0.Add(26*time.Hour + 40*time.Minute)
	cfg := burst.DefaultConfig()
	cfg.Kinds = []string{burst.KindError}
	p := detectortest.History(probeAt.Add(-time.Hour), 72, 2, detectortest.IP, detectortest.Actions...)
	if got := detectortest.Run(burst.New(cfg), p, probing(probeAt)); len(got) != 0 {
		t.Fatalf("denied burst reported with kinds [error]: %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := (burst.Config{}).Validate(); len(errs) != 7 {
		t.Fatalf("zero config: %d errors, want 7: %v", len(errs), errs)
	}
	bad := burst.DefaultConfig()
	bad.Kinds = []string{"denied", "timeouts"}
	if errs := bad.Validate(); len(errs) != 1 {
		t.Fatalf("unknown kind: %v", errs)
	}
	if errs := burst.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times one event against a trained role: "quiet" is the
// common successful call, "quiet_denied" a denial that computes the tail
// without crossing, "firing" the denial that crosses and builds a finding.
func BenchmarkDetect(b *testing.B) {
	p := detectortest.Trained(b, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Flat(20), outcomes(0.01, 0.002)), t0)
	d := burst.New(burst.DefaultConfig())
	at := t0.Add(2 * time.Hour)
	ok := detectortest.Event(at, "s3:GetObject", detectortest.IP)
	denied := ok
	denied.Outcome = schemas.Outcome{Result: schemas.ResultDenied, Status: 403}
	detectortest.BenchmarkWindows(b, d, p, []detectortest.WindowCase{
		{Name: "quiet", Event: &ok, Window: baseline.Window{Count: 20}, Fires: 0},
		{Name: "quiet_denied", Event: &denied, Window: baseline.Window{Count: 200, Denied: 12}, Fires: 0},
		{Name: "firing", Event: &denied, Window: baseline.Window{Count: 12, Denied: 10, NewActions: 8}, Fires: 1},
	})
}

// TestTailMatchesDistuv: the tail is gonum's binomial survival function
// where that is precise.
func TestTailMatchesDistuv(t *testing.T) {
	for _, c := range []struct {
		k, n uint32
		r    float64
	}{{10, 40, 0.05}, {3, 10, 0.2}, {20, 200, 0.05}, {1, 1, 0.5}} {
		want := distuv.Binomial{N: float64(c.n), P: c.r}.Survival(float64(c.k) - 1)
		if got := burst.Tail(c.k, c.n, c.r); math.Abs(got-want) > 1e-12*max(1, want) {
			t.Errorf("tail(%d, %d, %v) = %v, distuv says %v", c.k, c.n, c.r, got, want)
		}
	}
}
