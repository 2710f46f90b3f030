package credmisuse_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/credmisuse"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	now  = time.Date(2026, 11, 9, 14, 30, 0, 0, time.UTC)
	sa   = schemas.Identity{ID: "k8s:sa/prod/payments/api", Kind: schemas.KindServiceAccount, Name: "payments/api"}
	role = schemas.Identity{ID: "aws:role/111122223333/etl", Kind: schemas.KindRole, Name: "etl"}
	gh   = schemas.Identity{ID: "github:repo/acme/deploy", Kind: schemas.KindWorkload}
)

// use is a successful event of id with cred from ip at t.
func use(t time.Time, id schemas.Identity, cred schemas.Credential, ip string) schemas.Event {
	return schemas.Event{
		ID: fmt.Sprintf("ev-%d-%s", t.UnixNano(), ip), Time: schemas.At(t), Identity: id, Credential: cred,
		Action: "s3:GetObject", Actor: schemas.Actor{IP: ip}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
	}
}

// history is a profile of id with hours hours of three events an hour from
// each of ips, ending at end.
func history(id schemas.Identity, end time.Time, hours int, ips ...string) *baseline.Profile {
	p := &baseline.Profile{Identity: id}
	start := end.Add(-time.Duration(hours) * time.Hour)
	for h := range hours {
		for i, ip := range ips {
			for k := range 3 {
				ev := use(start.Add(time.Duration(h)*time.Hour+time.Duration(k*len(ips)+i)*time.Minute), id, schemas.Credential{}, ip)
				p.Observe(&ev)
			}
		}
	}
	return p
}

func id(identity, kind string, key ...string) string {
	return schemas.FindingID(credmisuse.Name, append([]string{identity, kind}, key...)...)
}

func TestOutsideEnvironment(t *testing.T) {
	saToken := schemas.Credential{ID: "JTI=6f5e4d3c", Type: "k8s_sa_token"}
	session := schemas.Credential{ID: "ASIAEXAMPLESESSION01", Type: "aws_sts"}
	static := schemas.Credential{ID: "AKIAEXAMPLESTATIC001", Type: "aws_access_key"}
	saHist := history(sa, now, 72, "10.20.1.7")
	saMixed := history(sa, now, 72, "10.20.1.7", "198.51.100.7")
	roleHist := history(role, now, 72, "10.30.4.2")
	young := history(sa, now, 6, "10.20.1.7")
	ghHist := history(gh, now, 72, "20.1.2.3")
	tests := []struct {
		name    string
		p       *baseline.Profile
		id      schemas.Identity
		cred    schemas.Credential
		ip      string
		session string
		wantKey []string // nil: quiet
	}{
		{name: "service-account token from its pod network", p: saHist, id: sa, cred: saToken, ip: "10.20.1.55"},
		{name: "service-account token from another internal network", p: saHist, id: sa, cred: saToken, ip: "10.99.3.4"},
		{name: "service-account token from the internet", p: saHist, id: sa, cred: saToken, ip: "203.0.113.9",
			wantKey: []string{"network", "203.0.113.0/24"}},
		{name: "service account from an external network it always uses", p: saMixed, id: sa, cred: saToken, ip: "198.51.100.40"},
		{name: "service account without a credential id from the internet", p: saHist, id: sa, ip: "2001:db8:7:1::5",
			wantKey: []string{"network", "2001:db8:7:1::/64"}},
		{name: "instance profile session from the internet", p: roleHist, id: role, cred: session, session: "i-0abc12345def67890", ip: "203.0.113.9",
			wantKey: []string{"network", "203.0.113.0/24"}},
		{name: "assumed-role session of a person from the internet", p: roleHist, id: role, cred: session, session: "alice", ip: "203.0.113.9"},
		{name: "static key from the internet is not a workload credential", p: roleHist, id: role, cred: static, ip: "203.0.113.9"},
		{name: "CI workload on hosted runners is not bound by default", p: ghHist, id: gh, ip: "52.4.5.6"},
		{name: "identity still learning", p: young, id: sa, cred: saToken, ip: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := credmisuse.New(credmisuse.DefaultConfig(), nil)
			ev := use(now, tt.id, tt.cred, tt.ip)
			ev.Actor.Session = tt.session
			got := d.Detect(detectortest.Input(tt.p, &ev), nil)
			if tt.wantKey == nil {
				if len(got) != 0 {
					t.Fatalf("want quiet, got %s", detectortest.Titles(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d findings, want 1: %s", len(got), detectortest.Titles(got))
			}
			f := got[0]
			if f.ID != id(tt.id.ID, credmisuse.KindOutsideEnvironment, tt.wantKey...) {
				t.Errorf("finding id is not the (identity, kind, network) one: %s", detectortest.Titles(got))
			}
			if f.Severity != schemas.SeverityHigh || f.Score != 85 || f.Technique != "T1078.004" || f.Analysis.Pattern != schemas.PatternUnseen {
				t.Errorf("finding: %+v", f)
			}
			if !strings.Contains(f.Explanation, tt.ip) || !strings.Contains(f.Explanation, "1 networks known") {
				t.Errorf("explanation lacks the address or the known count: %s", f.Explanation)
			}
		})
	}
	t.Run("NAT ranges are the environment", func(t *testing.T) {
		cfg := credmisuse.DefaultConfig()
		cfg.NATCIDRs = []string{"203.0.113.0/24"}
		ev := use(now, role, session, "203.0.113.9")
		ev.Actor.Session = "i-0abc12345def67890"
		if got := credmisuse.New(cfg, nil).Detect(detectortest.Input(roleHist, &ev), nil); len(got) != 0 {
			t.Fatalf("NAT egress reported: %s", detectortest.Titles(got))
		}
	})
	t.Run("workload credential issued in one cluster used in another", func(t *testing.T) {
		links := map[string]ingest.Link{saToken.ID: {Credential: saToken.ID, Identity: sa, Issuer: "k8s:prod"}}
		lookup := func(c string) (ingest.Link, bool) { l, ok := links[c]; return l, ok }
		d := credmisuse.New(credmisuse.DefaultConfig(), lookup)
		// The same service account name exists in staging and has acted
		// there: the identity knows the cluster, the token does not.
		staging := schemas.Identity{ID: "k8s:sa/staging/payments/api", Kind: schemas.KindServiceAccount}
		p := history(staging, now, 72, "10.20.1.7")
		home := use(now.Add(-time.Hour), staging, schemas.Credential{}, "10.20.1.7")
		home.Source.Cluster, home.Actor.Namespace = "staging", "payments"
		p.Observe(&home)
		ev := use(now, staging, saToken, "10.20.1.8")
		ev.Source.Cluster, ev.Actor.Namespace = "staging", "payments"
		got := d.Detect(detectortest.Input(p, &ev), nil)
		if len(got) != 1 || got[0].ID != id(staging.ID, credmisuse.KindOutsideEnvironment, "cluster", "staging") {
			t.Fatalf("want one foreign-cluster finding, got %s", detectortest.Titles(got))
		}
		if !strings.Contains(got[0].Explanation, "issued in cluster prod") {
			t.Errorf("explanation: %s", got[0].Explanation)
		}
		own := use(now, staging, schemas.Credential{ID: "JTI=staging-own", Type: "k8s_sa_token"}, "10.20.1.8")
		own.Source.Cluster, own.Actor.Namespace = "staging", "payments"
		if got := d.Detect(detectortest.Input(p, &own), nil); len(got) != 0 {
			t.Fatalf("a token of the cluster itself: %s", detectortest.Titles(got))
		}
	})
}

func TestConcurrentSources(t *testing.T) {
	cred := schemas.Credential{ID: "ASIAEXAMPLESESSION01", Type: "aws_sts"}
	type step struct {
		after time.Duration // since the previous step
		ip    string
		want  bool
	}
	tests := []struct {
		name  string
		cfg   func(*credmisuse.Config)
		hist  []string
		hours int
		steps []step
	}{
		{name: "stolen session used from the internet while the workload runs", steps: []step{
			{0, "10.30.4.2", false}, {40 * time.Second, "203.0.113.9", true}, {10 * time.Second, "203.0.113.9", false},
			{20 * time.Second, "10.30.4.2", true}}},
		{name: "two internal networks are one environment", steps: []step{
			{0, "10.30.4.2", false}, {10 * time.Second, "10.31.9.9", false}}},
		{name: "a move after the window is not at once", steps: []step{
			{0, "10.30.4.2", false}, {6 * time.Minute, "203.0.113.9", false}}},
		{name: "NAT gateway and VPC endpoint", cfg: func(c *credmisuse.Config) { c.NATCIDRs = []string{"198.51.100.0/24"} }, steps: []step{
			{0, "10.30.4.2", false}, {5 * time.Second, "198.51.100.20", false}, {5 * time.Second, "10.30.4.2", false}}},
		{name: "an egress network the identity always uses", hist: []string{"10.30.4.2", "198.51.100.7"}, steps: []step{
			{0, "10.30.4.2", false}, {5 * time.Second, "198.51.100.20", false}}},
		{name: "two foreign networks", steps: []step{
			{0, "203.0.113.9", false}, {time.Minute, "2001:db8:99::1", true}}},
		{name: "identity still learning", hours: 6, steps: []step{
			{0, "10.30.4.2", false}, {40 * time.Second, "203.0.113.9", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := credmisuse.DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			hist, hours := tt.hist, tt.hours
			if hist == nil {
				hist = []string{"10.30.4.2"}
			}
			if hours == 0 {
				hours = 72
			}
			p := history(role, now.Add(-time.Hour), hours, hist...)
			d := credmisuse.New(cfg, nil)
			at := now
			var ids []string
			for i, s := range tt.steps {
				at = at.Add(s.after)
				ev := use(at, role, cred, s.ip)
				got := d.Detect(detectortest.Input(p, &ev), nil)
				p.Observe(&ev)
				if !s.want {
					if len(got) != 0 {
						t.Fatalf("step %d (%s): want quiet, got %s", i, s.ip, detectortest.Titles(got))
					}
					continue
				}
				if len(got) != 1 || got[0].Severity != schemas.SeverityHigh || got[0].Technique != "T1550.001" {
					t.Fatalf("step %d (%s): want one high finding, got %s", i, s.ip, detectortest.Titles(got))
				}
				if !strings.Contains(got[0].Explanation, "apart; one source expected within 5m0s") {
					t.Errorf("explanation: %s", got[0].Explanation)
				}
				ids = append(ids, got[0].ID)
			}
			for _, x := range ids[min(1, len(ids)):] {
				if x != ids[0] {
					t.Errorf("the same pair of networks gave two finding ids")
				}
			}
			if len(ids) > 0 && ids[0] != id(role.ID, credmisuse.KindConcurrentSources, cred.ID, "10.30.4.0/24", "203.0.113.0/24") &&
				ids[0] != id(role.ID, credmisuse.KindConcurrentSources, cred.ID, "2001:db8:99::/64", "203.0.113.0/24") {
				t.Errorf("finding id is not the (identity, kind, credential, networks) one")
			}
		})
	}
	t.Run("the last-source map is bounded, oldest first", func(t *testing.T) {
		cfg := credmisuse.DefaultConfig()
		cfg.MaxCredentials = 2
		d := credmisuse.New(cfg, nil)
		p := history(role, now.Add(-time.Hour), 72, "10.30.4.2")
		for i, c := range []string{"ASIAONE", "ASIATWO", "ASIATHREE"} {
			ev := use(now.Add(time.Duration(i)*time.Second), role, schemas.Credential{ID: c, Type: "aws_sts"}, "10.30.4.2")
			d.Detect(detectortest.Input(p, &ev), nil)
		}
		ev := use(now.Add(5*time.Second), role, schemas.Credential{ID: "ASIAONE", Type: "aws_sts"}, "203.0.113.9")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("the evicted credential's source was remembered: %s", detectortest.Titles(got))
		}
		ev = use(now.Add(6*time.Second), role, schemas.Credential{ID: "ASIATHREE", Type: "aws_sts"}, "203.0.113.9")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 1 {
			t.Fatalf("the newest credential's source was forgotten: %s", detectortest.Titles(got))
		}
	})
}

func TestExpiry(t *testing.T) {
	p := history(role, now, 72, "10.30.4.2")
	expired := func(over time.Duration) schemas.Credential {
		return schemas.Credential{ID: "ASIAEXAMPLESESSION01", Type: "aws_sts",
			IssuedAt: schemas.At(now.Add(-over - time.Hour)), ExpiresAt: schemas.At(now.Add(-over))}
	}
	tests := []struct {
		name   string
		cred   schemas.Credential
		result schemas.Result
		ct     bool
		score  int // 0: quiet
	}{
		{name: "valid credential", cred: expired(-10 * time.Minute)},
		{name: "within the clock skew", cred: expired(90 * time.Second)},
		{name: "ten minutes after expiry", cred: expired(10 * time.Minute), score: 70},
		{name: "three hours after expiry", cred: expired(3 * time.Hour), score: 85},
		{name: "denied after expiry is the verifier working", cred: expired(3 * time.Hour), result: schemas.ResultDenied},
		{name: "expiry unknown", cred: schemas.Credential{ID: "AKIAEXAMPLESTATIC001", Type: "aws_access_key"}},
		{name: "a CT entry of an expired certificate is not a use", cred: expired(30 * 24 * time.Hour), ct: true},
	}
	d := credmisuse.New(credmisuse.DefaultConfig(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := use(now, role, tt.cred, "10.30.4.2")
			if tt.result != "" {
				ev.Outcome.Result = tt.result
			}
			if tt.ct {
				ev.Issuance = &schemas.Issuance{Credential: tt.cred.ID, CredentialType: "x509_certificate", Issuer: "R3"}
			}
			got := d.Detect(detectortest.Input(p, &ev), nil)
			if tt.score == 0 {
				if len(got) != 0 {
					t.Fatalf("want quiet, got %s", detectortest.Titles(got))
				}
				return
			}
			if len(got) != 1 || got[0].Score != tt.score || got[0].ID != id(role.ID, credmisuse.KindExpired, tt.cred.ID) {
				t.Fatalf("want one expiry finding scoring %d, got %s", tt.score, detectortest.Titles(got))
			}
			if !strings.Contains(got[0].Explanation, "after it expired at") || !strings.Contains(got[0].Explanation, "clock skew 2m0s") {
				t.Errorf("explanation: %s", got[0].Explanation)
			}
		})
	}
	t.Run("a renewed credential carries its new expiry", func(t *testing.T) {
		// A Vault token renewed at two thirds of its hour: the linker gives
		// later uses the renewed expiry.
		issued := now.Add(-80 * time.Minute)
		cred := schemas.Credential{ID: "hmac-sha256:accessor", Type: "vault_token", IssuedAt: schemas.At(issued),
			ExpiresAt: schemas.At(issued.Add(40*time.Minute + time.Hour))}
		ev := use(now, sa, cred, "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("renewed token reported: %s", detectortest.Titles(got))
		}
	})
}

func vaultEvent(t time.Time, path, accessor string) schemas.Event {
	return schemas.Event{
		ID: "vault:" + path + fmt.Sprint(t.Unix()), Time: schemas.At(t), Identity: sa,
		Source:     schemas.Source{Family: schemas.FamilyIssuance, Format: "vault_audit", Provider: "vault"},
		Credential: schemas.Credential{ID: accessor, Type: "vault_token"}, Actor: schemas.Actor{IP: "10.20.1.7"},
		Action: "vault:update:" + path, Target: schemas.Target{Resource: path}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
	}
}

func TestRevocation(t *testing.T) {
	p := history(sa, now.Add(-2*time.Hour), 72, "10.20.1.7")
	const acc = "hmac-sha256:0c1d"
	vaultUse := func(at time.Time, accessor string, result schemas.Result) schemas.Event {
		ev := vaultEvent(at, "secret/data/payments", accessor)
		ev.Action, ev.Outcome.Result = "vault:read:secret/data/payments", result
		return ev
	}
	tests := []struct {
		name   string
		revoke schemas.Event
		use    schemas.Event
		kind   string // "": quiet
	}{
		{name: "vault token used after revoke-self", revoke: vaultEvent(now, "auth/token/revoke-self", acc),
			use: vaultUse(now.Add(10*time.Minute), acc, schemas.ResultSuccess), kind: credmisuse.KindRevoked},
		{name: "vault token presented after revoke-accessor", revoke: vaultEvent(now, "auth/token/revoke-accessor/"+acc, "hmac-sha256:admin"),
			use: vaultUse(now.Add(10*time.Minute), acc, schemas.ResultDenied), kind: credmisuse.KindRevokedAttempt},
		{name: "a use in flight at the revocation", revoke: vaultEvent(now, "auth/token/revoke-self", acc),
			use: vaultUse(now.Add(30*time.Second), acc, schemas.ResultSuccess)},
		{name: "another token", revoke: vaultEvent(now, "auth/token/revoke-self", acc),
			use: vaultUse(now.Add(10*time.Minute), "hmac-sha256:other", schemas.ResultSuccess)},
		{name: "a failed revocation revokes nothing", revoke: func() schemas.Event {
			ev := vaultEvent(now, "auth/token/revoke-accessor/"+acc, "hmac-sha256:admin")
			ev.Outcome.Result = schemas.ResultDenied
			return ev
		}(), use: vaultUse(now.Add(10*time.Minute), acc, schemas.ResultSuccess)},
		{name: "access key used after DeleteAccessKey", revoke: schemas.Event{
			ID: "ct-1", Time: schemas.At(now), Identity: role, Action: "iam:DeleteAccessKey",
			Target:  schemas.Target{Resource: "arn:aws:iam::111122223333:user/etl/accesskey/AKIAIOSFODNN7EXAMPLE"},
			Outcome: schemas.Outcome{Result: schemas.ResultSuccess}},
			use:  use(now.Add(time.Hour), role, schemas.Credential{ID: "AKIAIOSFODNN7EXAMPLE", Type: "aws_access_key"}, "10.30.4.2"),
			kind: credmisuse.KindRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := credmisuse.New(credmisuse.DefaultConfig(), nil)
			if got := d.Detect(detectortest.Input(p, &tt.revoke), nil); len(got) != 0 {
				t.Fatalf("the revocation itself: %s", detectortest.Titles(got))
			}
			got := d.Detect(detectortest.Input(p, &tt.use), nil)
			if tt.kind == "" {
				if len(got) != 0 {
					t.Fatalf("want quiet, got %s", detectortest.Titles(got))
				}
				return
			}
			if len(got) != 1 || got[0].ID != id(tt.use.Identity.ID, tt.kind, tt.use.Credential.ID) {
				t.Fatalf("want one %s finding, got %s", tt.kind, detectortest.Titles(got))
			}
			f := got[0]
			if want := map[string]schemas.Severity{credmisuse.KindRevoked: schemas.SeverityHigh, credmisuse.KindRevokedAttempt: schemas.SeverityLow}[tt.kind]; f.Severity != want {
				t.Errorf("severity %s, want %s", f.Severity, want)
			}
			if !strings.Contains(f.Explanation, "after it was revoked at") || !strings.Contains(f.Explanation, tt.revoke.ID) {
				t.Errorf("explanation: %s", f.Explanation)
			}
		})
	}
	t.Run("tokens bound to a deleted secret", func(t *testing.T) {
		d := credmisuse.New(credmisuse.DefaultConfig(), nil)
		deployer := schemas.Identity{ID: "k8s:sa/prod/payments/deployer", Kind: schemas.KindServiceAccount}
		req := schemas.Event{ID: "k8s:tr", Time: schemas.At(now.Add(-time.Hour)), Identity: deployer,
			Source: schemas.Source{Family: schemas.FamilyCloudAudit, Cluster: "prod"}, Action: "k8s:create:serviceaccounts/token",
			Target: schemas.Target{Resource: "payments/serviceaccounts/api"}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
			Issuance: &schemas.Issuance{Credential: "JTI=bound-1", CredentialType: "k8s_sa_token", Subject: sa.ID,
				SANs: []string{"secret:api-token"}, Issuer: "k8s:prod", TTLSeconds: 86400, Requester: deployer.ID}}
		del := schemas.Event{ID: "k8s:del", Time: schemas.At(now), Identity: deployer, Source: schemas.Source{Cluster: "prod"},
			Action: "k8s:delete:secrets", Target: schemas.Target{Resource: "payments/secrets/api-token"},
			Outcome: schemas.Outcome{Result: schemas.ResultSuccess}}
		other := del
		other.Target.Resource = "payments/secrets/unrelated"
		for _, ev := range []*schemas.Event{&req, &other, &del} {
			if got := d.Detect(detectortest.Input(p, ev), nil); len(got) != 0 {
				t.Fatalf("%s: %s", ev.ID, detectortest.Titles(got))
			}
		}
		ev := use(now.Add(5*time.Minute), sa, schemas.Credential{ID: "JTI=bound-1", Type: "k8s_sa_token"}, "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 1 || got[0].ID != id(sa.ID, credmisuse.KindRevoked, "JTI=bound-1") {
			t.Fatalf("want the bound token reported as revoked, got %s", detectortest.Titles(got))
		}
	})
	t.Run("a revocation is forgotten once the credential has expired", func(t *testing.T) {
		links := map[string]ingest.Link{acc: {Credential: acc, ExpiresAt: now.Add(time.Hour)}}
		d := credmisuse.New(credmisuse.DefaultConfig(), func(c string) (ingest.Link, bool) { l, ok := links[c]; return l, ok })
		rev := vaultEvent(now, "auth/token/revoke-self", acc)
		d.Detect(detectortest.Input(p, &rev), nil)
		late := vaultUse(now.Add(2*time.Hour), acc, schemas.ResultDenied)
		if got := d.Detect(detectortest.Input(p, &late), nil); len(got) != 0 {
			t.Fatalf("an expired revocation was remembered: %s", detectortest.Titles(got))
		}
	})
	t.Run("the revoked set is bounded, oldest first", func(t *testing.T) {
		cfg := credmisuse.DefaultConfig()
		cfg.MaxRevoked = 2
		d := credmisuse.New(cfg, nil)
		for i, a := range []string{"a1", "a2", "a3"} {
			ev := vaultEvent(now.Add(time.Duration(i)*time.Second), "auth/token/revoke-self", a)
			d.Detect(detectortest.Input(p, &ev), nil)
		}
		for a, want := range map[string]int{"a1": 0, "a2": 1, "a3": 1} {
			ev := vaultUse(now.Add(time.Hour), a, schemas.ResultSuccess)
			if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != want {
				t.Errorf("%s: %d findings, want %d", a, len(got), want)
			}
		}
	})
}

func TestShadowIssuer(t *testing.T) {
	p := history(sa, now, 72, "10.20.1.7")
	issue := func(issuer, cred string) schemas.Event {
		ev := vaultEvent(now, "pki/issue/payments", "hmac-sha256:caller")
		ev.Issuance = &schemas.Issuance{Credential: cred, CredentialType: "x509_certificate", Subject: "payments.internal", Issuer: issuer, TTLSeconds: 86400}
		return ev
	}
	off := credmisuse.New(credmisuse.DefaultConfig(), nil)
	rogue := issue("rogue-ca", "1a2b")
	if got := off.Detect(detectortest.Input(p, &rogue), nil); len(got) != 0 {
		t.Fatalf("the check is off without sanctioned issuers, got %s", detectortest.Titles(got))
	}
	cfg := credmisuse.DefaultConfig()
	cfg.SanctionedIssuers = []string{"vault", "vault:pki*", "spire:*", "k8s:*"}
	d := credmisuse.New(cfg, nil)
	tests := []struct {
		name   string
		issuer string
		want   bool
	}{
		{"vault PKI mount", "vault:pki_int", false},
		{"vault token", "vault", false},
		{"SPIRE trust domain", "spire:example.org", false},
		{"unknown CA", "rogue-ca", true},
		{"lookalike", "vaultx", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ids []string
			for _, cred := range []string{"1a2b", "3c4d"} {
				ev := issue(tt.issuer, cred)
				got := d.Detect(detectortest.Input(p, &ev), nil)
				if !tt.want {
					if len(got) != 0 {
						t.Fatalf("want quiet, got %s", detectortest.Titles(got))
					}
					continue
				}
				if len(got) != 1 || got[0].Severity != schemas.SeverityHigh || got[0].Technique != "T1606" ||
					!strings.Contains(got[0].Explanation, "matches none of the 4 sanctioned issuers (vault, vault:pki*, spire:* and 1 more)") {
					t.Fatalf("want one shadow-issuer finding, got %s", detectortest.Titles(got))
				}
				ids = append(ids, got[0].ID)
			}
			if tt.want && (ids[0] != ids[1] || ids[0] != id(sa.ID, credmisuse.KindShadowIssuer, tt.issuer)) {
				t.Errorf("two credentials of one issuer must be one finding")
			}
		})
	}
}

func TestStaticAge(t *testing.T) {
	p := history(role, now, 72, "10.30.4.2")
	young := history(role, now, 6, "10.30.4.2")
	key := func(typ string, age time.Duration) schemas.Credential {
		c := schemas.Credential{ID: "AKIAIOSFODNN7EXAMPLE", Type: typ}
		if age > 0 {
			c.IssuedAt = schemas.At(now.Add(-age))
		}
		return c
	}
	day := 24 * time.Hour
	tests := []struct {
		name  string
		p     *baseline.Profile
		cred  schemas.Credential
		kind  string // default static_age
		score int
	}{
		{name: "a month-old access key", p: p, cred: key("aws_access_key", 30*day)},
		{name: "creation unknown", p: p, cred: key("aws_access_key", 0)},
		{name: "an old session is not static", p: p, cred: key("aws_sts", 400*day)},
		{name: "a 400-day access key", p: p, cred: key("aws_access_key", 400*day), score: 72},
		{name: "a 200-day GCP key", p: p, cred: key("gcp_sa_key", 200*day), score: 62},
		{name: "policy applies while learning", p: young, cred: key("aws_access_key", 400*day), score: 72},
		{name: "score is capped", p: p, cred: key("aws_access_key", 3000*day), score: 75},
		{name: "a key that expires within the policy age is the expiry check's", p: p, cred: func() schemas.Credential {
			c := key("aws_access_key", 400*day)
			c.ExpiresAt = schemas.At(c.IssuedAt.Add(12 * time.Hour))
			return c
		}(), kind: credmisuse.KindExpired, score: 85},
		{name: "a year-long API key past the policy age", p: p, cred: func() schemas.Credential {
			c := key("apigateway_api_key", 100*day)
			c.ExpiresAt = schemas.At(c.IssuedAt.Add(365 * day))
			return c
		}(), score: 52},
	}
	d := credmisuse.New(credmisuse.DefaultConfig(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := use(now, role, tt.cred, "10.30.4.2")
			got := d.Detect(detectortest.Input(tt.p, &ev), nil)
			if tt.score == 0 {
				if len(got) != 0 {
					t.Fatalf("want quiet, got %s", detectortest.Titles(got))
				}
				return
			}
			kind := tt.kind
			if kind == "" {
				kind = credmisuse.KindStaticAge
			}
			if len(got) != 1 || got[0].Score != tt.score || got[0].ID != id(role.ID, kind, tt.cred.ID) {
				t.Fatalf("want one %s finding scoring %d, got %s", kind, tt.score, detectortest.Titles(got))
			}
			if kind == credmisuse.KindStaticAge && !strings.Contains(got[0].Explanation, "old; policy allows 90 days") {
				t.Errorf("explanation: %s", got[0].Explanation)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := credmisuse.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	bad := credmisuse.Config{
		InternalCIDRs: []string{"10.0.0.0/8", "ten"}, NATCIDRs: []string{"1.2.3.4/33"},
		WorkloadIdentities: []string{""}, ClockSkew: -time.Second,
	}
	errs := bad.Validate()
	// ten, /33, the empty glob, window, skew, age, retention and the three bounds.
	if len(errs) != 10 {
		t.Fatalf("got %d errors, want 10: %v", len(errs), errs)
	}
	for _, want := range []string{`internal_cidrs: "ten"`, `nat_cidrs: "1.2.3.4/33"`, "workload_identities[0] is empty", "concurrent_window", "clock_skew", "max_bound_objects"} {
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e.Error(), want)
		}
		if !found {
			t.Errorf("no error mentions %q: %v", want, errs)
		}
	}
}

func BenchmarkDetect(b *testing.B) {
	p := history(role, now.Add(-time.Hour), 72, "10.30.4.2", "198.51.100.7")
	session := schemas.Credential{ID: "ASIAEXAMPLESESSION01", Type: "aws_sts", IssuedAt: schemas.At(now.Add(-time.Hour)),
		ExpiresAt: schemas.At(now.Add(time.Hour))}
	bench := func(b *testing.B, d *credmisuse.Detector, evs []schemas.Event, wantFindings bool) {
		ins := make([]*detectors.Input, len(evs))
		for i := range evs {
			ins[i] = detectortest.Input(p, &evs[i])
		}
		dst := make([]schemas.Finding, 0, 4)
		for i := range evs { // warm the state
			dst = d.Detect(ins[i], dst[:0])
		}
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for i := range b.N {
			dst = d.Detect(ins[i%len(ins)], dst[:0])
			n += len(dst)
		}
		if (n > 0) != wantFindings {
			b.Fatalf("%d findings over %d events", n, b.N)
		}
	}
	b.Run("quiet/internal", func(b *testing.B) {
		ev := use(now, role, session, "10.30.4.2")
		bench(b, credmisuse.New(credmisuse.DefaultConfig(), nil), []schemas.Event{ev}, false)
	})
	b.Run("quiet/known_external_instance_session", func(b *testing.B) {
		ev := use(now, role, session, "198.51.100.7")
		ev.Actor.Session = "i-0abc12345def67890"
		bench(b, credmisuse.New(credmisuse.DefaultConfig(), nil), []schemas.Event{ev}, false)
	})
	b.Run("quiet/revocations_held", func(b *testing.B) {
		d := credmisuse.New(credmisuse.DefaultConfig(), nil)
		for i := range 1000 {
			rev := vaultEvent(now.Add(-time.Hour), "auth/token/revoke-self", fmt.Sprint("acc-", i))
			d.Detect(detectortest.Input(p, &rev), nil)
		}
		ev := use(now, role, session, "10.30.4.2")
		bench(b, d, []schemas.Event{ev}, false)
	})
	b.Run("firing/concurrent_sources", func(b *testing.B) {
		a := use(now, role, session, "10.30.4.2")
		c := use(now.Add(time.Second), role, session, "203.0.113.9")
		bench(b, credmisuse.New(credmisuse.DefaultConfig(), nil), []schemas.Event{a, c}, true)
	})
	b.Run("firing/expired", func(b *testing.B) {
		ev := use(now.Add(3*time.Hour), role, session, "10.30.4.2")
		bench(b, credmisuse.New(credmisuse.DefaultConfig(), nil), []schemas.Event{ev}, true)
	})
}

func TestNormalDay(t *testing.T) {
	// An instance-profile role whose session rotates hourly (the SDK takes
	// the new one ten minutes before the old expires), calling through a
	// VPC endpoint and through the NAT gateway it has always used; and a
	// pod whose projected token the kubelet refreshes every 48 minutes.
	cfg := credmisuse.DefaultConfig()
	cfg.SanctionedIssuers = []string{"aws:sts", "k8s:*"}
	d := credmisuse.New(cfg, nil)
	rp := history(role, now.Add(-24*time.Hour), 72, "10.30.4.2", "198.51.100.7")
	sp := history(sa, now.Add(-24*time.Hour), 72, "10.20.1.7")
	start := now.Add(-24 * time.Hour)
	var got []schemas.Finding
	for m := 0; m < 24*60; m++ {
		at := start.Add(time.Duration(m) * time.Minute)
		h := (m + 10) / 60 // the session taken at hh:50 serves until hh+1:50
		issued := start.Add(time.Duration(h)*time.Hour - 10*time.Minute)
		session := schemas.Credential{ID: fmt.Sprintf("ASIASESSION%09d", h), Type: "aws_sts",
			IssuedAt: schemas.At(issued), ExpiresAt: schemas.At(issued.Add(time.Hour))}
		ip := "10.30.4.2"
		if m%3 == 0 {
			ip = "198.51.100.7"
		}
		ev := use(at, role, session, ip)
		ev.Actor.Session = "i-0abc12345def67890"
		got = d.Detect(detectortest.Input(rp, &ev), got)
		rp.Observe(&ev)

		k := m / 48
		tok := schemas.Credential{ID: fmt.Sprintf("JTI=pod-%d", k), Type: "k8s_sa_token",
			IssuedAt: schemas.At(start.Add(time.Duration(k) * 48 * time.Minute)), ExpiresAt: schemas.At(start.Add(time.Duration(k)*48*time.Minute + time.Hour))}
		if m%48 == 0 {
			tr := schemas.Event{ID: fmt.Sprint("tr-", k), Time: schemas.At(at), Identity: sa, Source: schemas.Source{Cluster: "prod"},
				Action: "k8s:create:serviceaccounts/token", Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
				Issuance: &schemas.Issuance{Credential: tok.ID, CredentialType: "k8s_sa_token", Subject: sa.ID,
					SANs: []string{"pod:api-5f6d7-xyz12"}, Issuer: "k8s:prod", TTLSeconds: 3600, Requester: sa.ID}}
			got = d.Detect(detectortest.Input(sp, &tr), got)
			sp.Observe(&tr)
		}
		ev = use(at, sa, tok, "10.20.1.7")
		ev.Source.Cluster, ev.Actor.Namespace = "prod", "payments"
		got = d.Detect(detectortest.Input(sp, &ev), got)
		sp.Observe(&ev)
	}
	if len(got) != 0 {
		t.Fatalf("a normal day raised %d findings:%s", len(got), detectortest.Titles(got))
	}
}
