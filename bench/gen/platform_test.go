package gen

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// The platform's logs and the lifecycle's records decode with the
// project's own decoders, each to the identity its key names (decodeRun
// fails on any record that would be a dead letter), and per-record format
// detection, which `nhisentry scan` uses, routes each record to the decoder
// of its format.
func TestPlatformDecodes(t *testing.T) {
	t.Parallel()
	run := generate(t, with(small, func(c *Config) { c.Platform, c.Lifecycle, c.Scenarios = true, true, AllScenarios }))
	auto := formats.NewAuto(formats.Builtin())
	perFormat := map[string]int{}
	for i, r := range run.recs {
		if r.Malformed {
			continue
		}
		perFormat[r.Format]++
		if d := auto.Detect(r.Value); d == nil || d.Format() != r.Format {
			t.Fatalf("record %d (%s) detected as %v: %.300s", i, r.Format, d, r.Value)
		}
		if _, err := auto.Decode(nil, ingest.Record{Value: r.Value}); err != nil {
			t.Fatalf("record %d (%s) is a dead letter for the auto decoder: %v", i, r.Format, err)
		}
	}
	for _, f := range append(slices.Clone(Formats), PlatformFormats...) {
		if perFormat[f] == 0 {
			t.Errorf("no %s record in a week", f)
		}
	}
	evs := decodeRun(t, run)

	workloads := map[string]bool{} // the cohorts Argo CD deploys
	for _, w := range buildPopulation(with(small, func(c *Config) {})).workloads {
		workloads["k8s:"+w.ns+"/"+w.sa] = true
	}
	for _, c := range lifecycleClients() {
		if c.cron == 0 {
			workloads["k8s:"+c.ns+"/"+c.name] = true
		}
	}
	serials := map[string]bool{} // issued by cert-manager
	var deploys, svids, ct, shadows int
	for _, ev := range evs {
		switch ev.Source.Format {
		case FormatK8sAudit:
			if ev.Identity.ID != DeployerIdentity {
				continue // a lifecycle client, see TestLifecycle
			}
			cohort, ok := baseline.DeployOf(&ev)
			if !ok || !workloads[cohort] || ev.Identity.ID != DeployerIdentity {
				t.Fatalf("Kubernetes audit event %s by %s on %s is not a deploy of a workload", ev.Action, ev.Identity.ID, ev.Target.Resource)
			}
			deploys++
		case FormatSPIRE:
			// The expiration is logged to the second.
			if is := ev.Issuance; is == nil || !strings.HasPrefix(is.Subject, "spiffe://"+trustDomain+"/ns/") || is.TTLSeconds < int64(svidTTL/time.Second)-1 || is.TTLSeconds > int64(svidTTL/time.Second) {
				t.Fatalf("SPIRE event %+v is not a workload SVID with a %v TTL", ev.Issuance, svidTTL)
			}
			svids++
		case FormatCertManager:
			if ev.Issuance == nil || ev.Issuance.Credential == "" || len(ev.Issuance.SANs) == 0 || ev.Identity.ID != CertManagerID {
				t.Fatalf("cert-manager event %+v names no certificate", ev.Issuance)
			}
			serials[ev.Issuance.Credential] = true
		case FormatCT:
			sanctioned := serials[ev.Issuance.Credential]
			shadow := strings.HasPrefix(ev.Identity.ID, "cert:"+shadowIssuerCN+"/")
			if shadow == sanctioned {
				t.Errorf("CT entry %s: shadow %v, logged by cert-manager before %v", ev.Identity.ID, shadow, sanctioned)
			}
			if shadow {
				shadows++
			}
			for _, n := range ev.Issuance.SANs {
				if !strings.HasSuffix(n, "."+OrgDomain) {
					t.Errorf("CT entry for %s, outside %s", n, OrgDomain)
				}
			}
			ct++
		}
	}
	// 24 workloads deployed on about one weekday in three, SVIDs rotated
	// every two hours, 40 public certificates renewed every 60 days, each
	// in two logs.
	if deploys < 24 || svids < 24*12*7*9/10 || ct-shadows < 4 || shadows != 1 {
		t.Errorf("%d deploys, %d SVIDs, %d CT entries (%d shadow) in a week", deploys, svids, ct, shadows)
	}
}

// The platform's logs, and the lifecycle on top of them, add records
// without changing any other: the smaller run's records are, in order, a
// subsequence of the larger one's.
func TestPlatformAddsOnly(t *testing.T) {
	t.Parallel()
	cfg := with(small, func(c *Config) { c.Attacks, c.Malformed, c.Duration = true, 8, 2*24*time.Hour })
	plat := with(cfg, func(c *Config) { c.Platform = true })
	tests := []struct {
		name          string
		without, with Config
	}{
		{"platform", cfg, plat},
		{"lifecycle", plat, with(plat, func(c *Config) { c.Lifecycle = true })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			less, more := generate(t, tt.without), generate(t, tt.with)
			i := 0
			for _, r := range more.recs {
				if i < len(less.recs) && string(r.Value) == string(less.recs[i].Value) {
					i++
				}
			}
			if i != len(less.recs) || len(more.recs) == len(less.recs) {
				t.Fatalf("%d of %d records kept in order, %d records with %s", i, len(less.recs), len(more.recs), tt.name)
			}
			if !slices.Equal(more.labels, less.labels) {
				t.Errorf("labels %v with %s, %v without", more.labels, tt.name, less.labels)
			}
		})
	}
}

// The shadow certificate's entry is sanctioned by nothing: no cert-manager
// or SPIRE record of its serial or names, before or after.
func TestShadowCertificate(t *testing.T) {
	t.Parallel()
	run := generate(t, with(small, func(c *Config) { c.Platform, c.Scenarios = true, []string{ScenarioShadowCert} }))
	if len(run.labels) != 1 {
		t.Fatalf("labels %v, want one", run.labels)
	}
	l := run.labels[0]
	evs := decodeRun(t, run)
	var in []schemas.Event
	for _, ev := range evs {
		if ev.Identity.ID == l.Identity {
			in = append(in, ev)
		}
	}
	if len(in) != 1 || in[0].Source.Format != FormatCT || !in[0].Time.Time.Equal(l.Start) || !l.End.Equal(l.Start) {
		t.Fatalf("label %+v matches events %v, want its one CT entry", l, in)
	}
	is := in[0].Issuance
	if !strings.Contains(is.Issuer, shadowIssuerO) || !slices.Contains(is.SANs, "login."+OrgDomain) {
		t.Errorf("shadow certificate %+v", is)
	}
	for _, ev := range evs {
		if ev.Source.Format == FormatCT || ev.Issuance == nil {
			continue
		}
		if ev.Issuance.Credential == is.Credential || slices.ContainsFunc(ev.Issuance.SANs, func(n string) bool { return slices.Contains(is.SANs, n) }) {
			t.Errorf("%s record %s sanctions the shadow certificate", ev.Source.Format, ev.ID)
		}
	}
}
