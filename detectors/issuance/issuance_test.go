package issuance_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/issuance"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	// now starts an hour, so a burst's hour is the test's.
	now = time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	sa  = schemas.Identity{ID: "k8s:sa/prod/payments/api", Kind: schemas.KindServiceAccount, Name: "payments/api"}
)

// profile is sa's baseline: hours of three events an hour before end, and
// the issuance model iss (none when nil) built an hour before end.
func profile(end time.Time, hours int, iss *baseline.IssuanceProfile) *baseline.Profile {
	p := &baseline.Profile{Identity: sa}
	start := end.Add(-time.Duration(hours) * time.Hour)
	for h := range hours {
		for k := range 3 {
			t := start.Add(time.Duration(h)*time.Hour + time.Duration(k)*20*time.Minute)
			ev := schemas.Event{ID: fmt.Sprint("h-", t.Unix()), Time: schemas.At(t), Identity: sa, Action: "vault:read:secret/data/payments",
				Actor: schemas.Actor{IP: "10.20.1.7"}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess}}
			p.Observe(&ev)
		}
	}
	if iss != nil {
		p.Apply(&baseline.Baseline{Identity: sa, DataThrough: end.Add(-time.Hour), Issuance: iss}, baseline.DefaultClasses())
	}
	return p
}

// issue is an issuance to sa of cred of type typ valid for ttl.
func issue(t time.Time, cred, typ string, ttl time.Duration) schemas.Event {
	return schemas.Event{
		ID: fmt.Sprintf("iss-%d-%s", t.UnixNano(), cred), Time: schemas.At(t), Identity: sa,
		Source:     schemas.Source{Family: schemas.FamilyIssuance, Format: "vault_audit", Provider: "vault"},
		Credential: schemas.Credential{ID: cred, Type: typ}, Actor: schemas.Actor{IP: "10.20.1.7"},
		Action: "vault:update:auth/kubernetes/login", Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
		Issuance: &schemas.Issuance{Credential: cred, CredentialType: typ, Subject: sa.ID, Issuer: "vault",
			TTLSeconds: int64(ttl / time.Second), Requester: sa.ID},
	}
}

// every is n issuances from start, step apart; fresh gives each a new
// credential id, else they renew one.
func every(start time.Time, n int, step time.Duration, typ string, ttl time.Duration, fresh bool) []schemas.Event {
	evs := make([]schemas.Event, n)
	for i := range n {
		cred := "hmac-sha256:renewed"
		if fresh {
			cred = fmt.Sprintf("hmac-sha256:%04d", i)
		}
		evs[i] = issue(start.Add(time.Duration(i)*step), cred, typ, ttl)
	}
	return evs
}

func TestIssuance(t *testing.T) {
	const day = 24 * time.Hour
	// An identity that logs in for an hour's token and renews at two
	// thirds of it: a new credential every 40 minutes, two valid at once.
	renewing := &baseline.IssuanceProfile{Issued: 300, TTL: 3600, Interval: 2400, MaxConcurrent: 2, Concurrent: 2}
	longLived := &baseline.IssuanceProfile{Issued: 300, TTL: 8 * 3600, Interval: 600, MaxConcurrent: 2, Concurrent: 2}
	certs := &baseline.IssuanceProfile{Issued: 40, TTL: 90 * 86400, Interval: 60 * 86400, MaxConcurrent: 2, Concurrent: 1}
	few := &baseline.IssuanceProfile{Issued: 3, TTL: 3600, Interval: 4 * 3600, MaxConcurrent: 1, Concurrent: 1}
	burst := func(fresh bool) []schemas.Event { return every(now, 30, time.Minute, "vault_token", time.Hour, fresh) }
	tests := []struct {
		name       string
		model      *baseline.IssuanceProfile
		hours      int // of history; default 72
		relearning bool
		events     []schemas.Event
		want       map[string]int // kind → findings
		score      map[string]int // kind → score of its finding
	}{
		{name: "a new credential at two thirds of its TTL, for a day", model: renewing,
			events: every(now, 36, 40*time.Minute, "vault_token", time.Hour, true)},
		{name: "one token renewed at two thirds of its TTL, for a day", model: renewing,
			events: every(now, 36, 40*time.Minute, "vault_token", time.Hour, false)},
		{name: "four replicas restarting within a minute", model: renewing,
			events: every(now, 4, 15*time.Second, "vault_token", time.Hour, true)},
		{name: "thirty new tokens in thirty minutes", model: renewing, events: burst(true),
			want: map[string]int{issuance.KindBurst: 1, issuance.KindConcurrent: 1}, score: map[string]int{issuance.KindBurst: 77, issuance.KindConcurrent: 73}},
		{name: "thirty renewals of one token in thirty minutes are a burst, not a pile", model: renewing, events: burst(false),
			want: map[string]int{issuance.KindBurst: 1}},
		{name: "tokens pile up without a burst", model: longLived,
			events: every(now, 36, 5*time.Minute, "vault_token", 8*time.Hour, true),
			want:   map[string]int{issuance.KindConcurrent: 1}, score: map[string]int{issuance.KindConcurrent: 73}},
		{name: "a 768h token", model: renewing, events: every(now, 1, 0, "vault_token", 768*time.Hour, true),
			want: map[string]int{issuance.KindLongTTL: 1}, score: map[string]int{issuance.KindLongTTL: 90}},
		{name: "a 48h token from an identity without an issuance baseline", events: every(now, 1, 0, "aws_sts", 48*time.Hour, true),
			want: map[string]int{issuance.KindLongTTL: 1}, score: map[string]int{issuance.KindLongTTL: 70}},
		{name: "a 48h token while learning", hours: 6, model: renewing, events: every(now, 1, 0, "k8s_sa_token", 48*time.Hour, true),
			want: map[string]int{issuance.KindLongTTL: 1}},
		{name: "a 30-day certificate where an hour is typical", model: renewing, events: every(now, 1, 0, "x509_certificate", 30*day, true),
			want: map[string]int{issuance.KindUnusualTTL: 1}, score: map[string]int{issuance.KindUnusualTTL: 95}},
		{name: "a 5h SVID where an hour is typical", model: renewing, events: every(now, 1, 0, "x509_svid", 5*time.Hour, true),
			want: map[string]int{issuance.KindUnusualTTL: 1}, score: map[string]int{issuance.KindUnusualTTL: 73}},
		{name: "a 2h token where an hour is typical", model: renewing, events: every(now, 1, 0, "vault_token", 2*time.Hour, true)},
		{name: "a 90-day certificate is not a token", model: certs, events: every(now, 3, time.Minute, "x509_certificate", 90*day, true)},
		{name: "a 5h SVID while learning", hours: 6, model: renewing, events: every(now, 1, 0, "x509_svid", 5*time.Hour, true)},
		{name: "a burst from an identity without an issuance baseline", events: burst(true)},
		{name: "a burst from a model of too few issuances", model: few, events: burst(true)},
		{name: "a burst while learning", hours: 6, model: renewing, events: burst(true)},
		{name: "a rollout's logins while re-learning after a deploy", relearning: true, model: renewing, events: burst(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hours := tt.hours
			if hours == 0 {
				hours = 72
			}
			p := profile(now, hours, tt.model)
			d := issuance.New(issuance.DefaultConfig())
			var got []schemas.Finding
			for i := range tt.events {
				ev := &tt.events[i]
				in := detectors.NewInput(p, ev, ev.Time.Time)
				in.Relearning = tt.relearning
				got = d.Detect(&in, got)
				p.Observe(ev)
			}
			kinds := map[string]int{}
			for _, f := range got {
				kind := ""
				for _, k := range []string{issuance.KindLongTTL, issuance.KindUnusualTTL, issuance.KindBurst, issuance.KindConcurrent} {
					if f.ID == kindID(k, f) {
						kind = k
					}
				}
				if kind == "" {
					t.Fatalf("finding with an unexpected id: %s", detectortest.Titles([]schemas.Finding{f}))
				}
				kinds[kind]++
				if s, ok := tt.score[kind]; ok && f.Score != s {
					t.Errorf("%s scored %d, want %d: %s", kind, f.Score, s, f.Explanation)
				}
				if f.Detector != issuance.Name || f.Technique == "" || f.Analysis.Baseline == "" || len(f.EventIDs) != 1 {
					t.Errorf("incomplete finding %+v", f)
				}
			}
			if len(kinds) != len(tt.want) {
				t.Fatalf("got %v, want %v:%s", kinds, tt.want, detectortest.Titles(got))
			}
			for k, n := range tt.want {
				if kinds[k] != n {
					t.Fatalf("got %v, want %v:%s", kinds, tt.want, detectortest.Titles(got))
				}
			}
		})
	}
	t.Run("id-less issuances are not counted", func(t *testing.T) {
		p := profile(now, 72, renewing)
		d := issuance.New(issuance.DefaultConfig())
		var got []schemas.Finding
		for _, ev := range burst(true) {
			ev.Issuance.Credential, ev.Credential.ID = "", ""
			got = d.Detect(detectortest.Input(p, &ev), got)
		}
		if len(got) != 0 {
			t.Fatalf("want quiet, got %s", detectortest.Titles(got))
		}
	})
}

// kindID is the id f would have as a finding of kind: the TTL kinds are
// keyed by credential type and subject, the others by the hour.
func kindID(kind string, f schemas.Finding) string {
	switch kind {
	case issuance.KindLongTTL, issuance.KindUnusualTTL:
		for _, typ := range []string{"vault_token", "aws_sts", "k8s_sa_token", "x509_certificate", "x509_svid"} {
			if id := schemas.FindingID(issuance.Name, f.Identity.ID, kind, typ, sa.ID); id == f.ID {
				return id
			}
		}
		return ""
	}
	return schemas.FindingID(issuance.Name, f.Identity.ID, kind, fmt.Sprint(f.FirstSeen.Unix()/3600))
}

func TestExplanations(t *testing.T) {
	renewing := &baseline.IssuanceProfile{Issued: 300, TTL: 3600, Interval: 2400, MaxConcurrent: 2, Concurrent: 2}
	p := profile(now, 72, renewing)
	d := issuance.New(issuance.DefaultConfig())
	var got []schemas.Finding
	for _, ev := range every(now, 12, time.Minute, "vault_token", time.Hour, true) {
		got = d.Detect(detectortest.Input(p, &ev), got)
	}
	long := issue(now.Add(20*time.Minute), "hmac-sha256:long", "vault_token", 768*time.Hour)
	got = d.Detect(detectortest.Input(p, &long), got)
	want := []string{
		"10 credentials issued to k8s:sa/prod/payments/api in the hour from Mon 14:00; baseline one every 40m (1.5 an hour) over 300 issuances, threshold 10",
		"10 credentials issued to k8s:sa/prod/payments/api valid at once; baseline at most 2 at once over 300 issuances, threshold 10",
		"vault_token for k8s:sa/prod/payments/api issued with a TTL of 768h (32 days); policy maximum 24h, typical 1h",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d findings:%s", len(got), detectortest.Titles(got))
	}
	for i, f := range got {
		if f.Explanation != want[i] {
			t.Errorf("explanation %d:\n got %s\nwant %s", i, f.Explanation, want[i])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := issuance.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	errs := (issuance.Config{TokenTypes: []string{" "}, MinTTL: -time.Second}).Validate()
	// max_ttl, the empty type, three factors, min_ttl and six counts.
	if len(errs) != 12 {
		t.Fatalf("got %d errors, want 12: %v", len(errs), errs)
	}
}

func BenchmarkDetect(b *testing.B) {
	renewing := &baseline.IssuanceProfile{Issued: 300, TTL: 3600, Interval: 2400, MaxConcurrent: 2, Concurrent: 2}
	p := profile(now, 72, renewing)
	run := func(b *testing.B, d *issuance.Detector, evs []schemas.Event, step func(i int, ev *schemas.Event), wantFindings bool) {
		ins := make([]*detectors.Input, len(evs))
		for i := range evs {
			ins[i] = detectortest.Input(p, &evs[i])
		}
		dst := make([]schemas.Finding, 0, 4)
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for i := range b.N {
			k := i % len(evs)
			if step != nil {
				step(i, &evs[k])
			}
			dst = d.Detect(ins[k], dst[:0])
			n += len(dst)
		}
		if (n > 0) != wantFindings {
			b.Fatalf("%d findings over %d events", n, b.N)
		}
	}
	b.Run("quiet/not_an_issuance", func(b *testing.B) {
		ev := issue(now, "hmac-sha256:x", "vault_token", time.Hour)
		ev.Issuance = nil
		run(b, issuance.New(issuance.DefaultConfig()), []schemas.Event{ev}, nil, false)
	})
	b.Run("quiet/renewal", func(b *testing.B) {
		evs := every(now, 1, 0, "vault_token", time.Hour, false)
		run(b, issuance.New(issuance.DefaultConfig()), evs, func(i int, ev *schemas.Event) {
			ev.Time = schemas.At(now.Add(time.Duration(i) * 40 * time.Minute))
		}, false)
	})
	b.Run("quiet/rotation", func(b *testing.B) {
		evs := every(now, 1024, 0, "vault_token", time.Hour, true)
		run(b, issuance.New(issuance.DefaultConfig()), evs, func(i int, ev *schemas.Event) {
			ev.Time = schemas.At(now.Add(time.Duration(i) * 40 * time.Minute))
		}, false)
	})
	b.Run("firing/long_ttl", func(b *testing.B) {
		evs := every(now, 1, 0, "vault_token", 768*time.Hour, false)
		run(b, issuance.New(issuance.DefaultConfig()), evs, nil, true)
	})
}
