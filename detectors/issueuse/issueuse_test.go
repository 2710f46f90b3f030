package issueuse_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/issueuse"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/issuance"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	now       = time.Date(2026, 11, 9, 14, 30, 0, 0, time.UTC)
	etl       = detectortest.Identity
	reporting = schemas.Identity{ID: "aws:role/111122223333/reporting", Kind: schemas.KindRole}
	cmSA      = schemas.Identity{ID: "k8s:sa/prod-eu/cert-manager/cert-manager", Kind: schemas.KindServiceAccount}
)

// links is a linker's state: credential → link.
type links map[string]ingest.Link

func (l links) lookup(c string) (ingest.Link, bool) { k, ok := l[c]; return k, ok }

// use is an event of id using credential from ip at t.
func use(id schemas.Identity, t time.Time, credential, ip string) schemas.Event {
	ev := detectortest.Event(t, "s3:GetObject", ip)
	ev.ID += ":" + credential
	ev.Identity = id
	ev.Source = schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail"}
	ev.Credential = schemas.Credential{ID: credential, Type: "aws_access_key"}
	return ev
}

func TestFirstUse(t *testing.T) {
	week := detectortest.History(now, 7*24, 3, "10.20.1.7", "s3:GetObject", "s3:PutObject")
	young := detectortest.History(now, 6, 3, "10.20.1.7", "s3:GetObject")
	ls := links{
		"ASIAFRESH":  {Credential: "ASIAFRESH", Identity: etl, Issuer: "sts", IssuedAt: now.Add(-10 * time.Minute)},
		"ASIASTALE":  {Credential: "ASIASTALE", Identity: etl, Issuer: "sts", IssuedAt: now.Add(-3 * time.Hour)},
		"CERTSERIAL": {Credential: "CERTSERIAL", Identity: cmSA, IssuedAt: now.Add(-time.Minute)},
		"WEAKLINK":   {Credential: "WEAKLINK", Identity: schemas.Identity{ID: "cert:R3/ab12", Kind: schemas.KindCertificate}, IssuedAt: now.Add(-time.Minute)},
	}
	tests := []struct {
		name       string
		profile    *baseline.Profile
		id         schemas.Identity
		credential string
		ip         string
		relearning bool
		want       string // Analysis.Observed prefix of the one finding, "" for none
		wantSev    schemas.Severity
	}{
		{name: "owner, known network", profile: week, id: etl, credential: "ASIAFRESH", ip: "10.20.1.99"},
		{name: "hand-off to another role", profile: young, id: reporting, credential: "ASIAFRESH", ip: "10.20.1.99",
			want: "used_by=" + reporting.ID, wantSev: schemas.SeverityHigh},
		{name: "link names a broker", profile: week, id: etl, credential: "CERTSERIAL", ip: "10.20.1.99"},
		{name: "link names a weak identity", profile: week, id: etl, credential: "WEAKLINK", ip: "10.20.1.99"},
		{name: "event identity is weak", profile: week, id: schemas.Identity{ID: "ip:10.20.1.99", Kind: schemas.KindUnknown}, credential: "ASIAFRESH", ip: "10.20.1.99"},
		{name: "fresh credential from a new network", profile: week, id: etl, credential: "ASIAFRESH", ip: "203.0.113.9",
			want: "network=203.0.113.0/24", wantSev: schemas.SeverityMedium},
		{name: "new network while learning", profile: young, id: etl, credential: "ASIAFRESH", ip: "203.0.113.9"},
		{name: "new network while re-learning", profile: week, id: etl, credential: "ASIAFRESH", ip: "203.0.113.9", relearning: true},
		{name: "new network, credential no longer fresh", profile: week, id: etl, credential: "ASIASTALE", ip: "203.0.113.9"},
		{name: "unlinked credential", profile: week, id: reporting, credential: "AKIASTATIC", ip: "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := issueuse.New(issueuse.DefaultConfig(), ls.lookup)
			ev := use(tt.id, now, tt.credential, tt.ip)
			in := detectortest.Input(tt.profile, &ev)
			in.Relearning = tt.relearning
			got := d.Detect(in, nil)
			f, ok := detectortest.Single(t, got, tt.want != "")
			if !ok {
				return
			}
			if !strings.HasPrefix(f.Analysis.Observed, tt.want) || f.Severity != tt.wantSev || f.Technique != issueuse.TechniqueCredential ||
				f.Identity != tt.id || f.Detector != issueuse.Name || len(f.EventIDs) != 1 || f.EventIDs[0] != ev.ID {
				t.Errorf("finding: %+v", f)
			}
			if !strings.Contains(f.Explanation, "10m0s later") || !strings.Contains(f.Explanation, etl.ID) {
				t.Errorf("explanation lacks issuance and expectation: %s", f.Explanation)
			}
			// Judged once: the next use is not a first use.
			ev2 := use(tt.id, now.Add(time.Minute), tt.credential, tt.ip)
			if again := d.Detect(detectortest.Input(tt.profile, &ev2), nil); len(again) != 0 {
				t.Fatalf("second use judged again: %+v", again)
			}
		})
	}
}

func TestFreshCredentialNewCluster(t *testing.T) {
	sa := schemas.Identity{ID: "k8s:sa/prod-eu/etl/loader", Kind: schemas.KindServiceAccount}
	p := &baseline.Profile{Identity: sa}
	for i := range 7 * 24 {
		ev := use(sa, now.Add(-time.Duration(i)*time.Hour), "", "10.20.1.7")
		ev.Source.Cluster, ev.Actor.Namespace = "prod-eu", "etl"
		p.Observe(&ev)
	}
	ls := links{"tok-1": {Credential: "tok-1", Identity: sa, IssuedAt: now.Add(-2 * time.Minute)}}
	for _, tt := range []struct {
		cluster, want string
	}{{"prod-eu", ""}, {"dev-us", "cluster=dev-us/etl"}} {
		d := issueuse.New(issueuse.DefaultConfig(), ls.lookup)
		ev := use(sa, now, "tok-1", "10.20.1.8")
		ev.Source.Cluster, ev.Actor.Namespace = tt.cluster, "etl"
		got := d.Detect(detectortest.Input(p, &ev), nil)
		if tt.want == "" && len(got) != 0 || tt.want != "" && (len(got) != 1 || got[0].Analysis.Observed != tt.want) {
			t.Errorf("cluster %s: %+v", tt.cluster, got)
		}
	}
}

func TestFirstUseSetIsBounded(t *testing.T) {
	cfg := issueuse.DefaultConfig()
	cfg.MaxCredentials = 2
	ls := links{}
	for i := range 3 {
		c := fmt.Sprint("ASIA", i)
		ls[c] = ingest.Link{Credential: c, Identity: etl, IssuedAt: now.Add(-time.Minute)}
	}
	d := issueuse.New(cfg, ls.lookup)
	p := &baseline.Profile{Identity: reporting}
	var ids []string
	for _, c := range []string{"ASIA0", "ASIA1", "ASIA0", "ASIA2", "ASIA0"} {
		ev := use(reporting, now, c, "10.1.1.1")
		for _, f := range d.Detect(detectortest.Input(p, &ev), nil) {
			ids = append(ids, f.ID)
		}
	}
	// ASIA0 is judged at its first use, remembered while two credentials
	// fit, forgotten after ASIA2, and judged again with the same id.
	if len(ids) != 4 || ids[0] != ids[3] || ids[0] != schemas.FindingID(issueuse.Name, reporting.ID, "handoff", "ASIA0") {
		t.Fatalf("finding ids %v", ids)
	}
}

// TestWithLinker runs the detector behind ingest's Linker, as the pipeline
// does: an STS issuance links the key to the role, a CloudTrail use whose
// identity is only an address is resolved to it.
func TestWithLinker(t *testing.T) {
	linker := ingest.NewLinker(0)
	d := issueuse.New(issueuse.DefaultConfig(), linker.Lookup)
	p := detectortest.History(now, 7*24, 3, "10.20.1.7", "s3:GetObject")
	events := []schemas.Event{
		{ID: "sts-1", Time: schemas.At(now.Add(-5 * time.Minute)), Identity: schemas.Identity{ID: "aws:user/111122223333/deployer", Kind: schemas.KindUser},
			Action: "sts:AssumeRole", Source: schemas.Source{Family: schemas.FamilyIssuance, Format: "cloudtrail"},
			Issuance: &schemas.Issuance{Credential: "ASIALINKED", Subject: etl.ID, Issuer: "sts", TTLSeconds: 3600}},
		use(schemas.Identity{ID: "ip:198.51.100.4", Kind: schemas.KindUnknown}, now, "ASIALINKED", "198.51.100.4"),
	}
	linker.Apply(events)
	var got []schemas.Finding
	for i := range events {
		got = d.Detect(detectortest.Input(p, &events[i]), got)
	}
	if len(got) != 1 || got[0].Identity != etl || got[0].Analysis.Observed != "network=198.51.100.0/24" {
		t.Fatalf("findings: %+v", got)
	}
}

// ctEvent decodes a certstream message for a certificate of names with
// serial, issued by the CA named issuerO, seen at t.
func ctEvent(t testing.TB, serial, issuerO string, names []string, seen time.Time, index int) schemas.Event {
	t.Helper()
	msg := fmt.Sprintf(`{"message_type":"certificate_update","data":{"update_type":"PrecertLogEntry","leaf_cert":{
		"subject":{"aggregated":"/CN=%[1]s","CN":"%[1]s"},"issuer":{"aggregated":"/C=US/O=%[2]s/CN=R11","CN":"R11","O":"%[2]s"},
		"all_domains":["%[3]s"],"not_before":%[4]d,"not_after":%[5]d,"serial_number":"%[6]s"},
		"chain":[],"cert_index":%[7]d,"cert_link":"https://oak.ct.letsencrypt.org/2026h2/ct/v1/get-entries?start=%[7]d&end=%[7]d",
		"seen":%[8]d.25,"source":{"name":"Let's Encrypt 'Oak2026h2' log","url":"https://oak.ct.letsencrypt.org/2026h2/"}}}`,
		names[0], issuerO, strings.Join(names, `","`), seen.Add(-time.Hour).Unix(), seen.Add(90*24*time.Hour).Unix(), serial, index, seen.Unix())
	evs, err := issuance.NewCTCertstream().Decode(nil, ingest.Record{Value: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

// certManagerIssued decodes a cert-manager "certificate issued" JSON line
// for names through a ClusterIssuer.
func certManagerIssued(t testing.TB, clusterIssuer string, names []string, at time.Time) schemas.Event {
	t.Helper()
	line := fmt.Sprintf(`{"ts":%d.5,"level":"info","msg":"certificate issued","logger":"cert-manager.controller","resource_name":"api-tls-1","resource_namespace":"prod","resource_kind":"CertificateRequest","related_resource_name":"%s","related_resource_kind":"ClusterIssuer","dns_names":["%s"]}`,
		at.Unix(), clusterIssuer, strings.Join(names, `","`))
	evs, err := issuance.NewCertManager().Decode(nil, ingest.Record{Value: []byte(line)})
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

// vaultIssued is a Vault PKI issue (its serial in the audit log's colon
// form, which the audit device leaves readable when serial_number is a
// non-HMAC response key).
func vaultIssued(serial string, names []string, at time.Time) schemas.Event {
	return schemas.Event{
		ID: "vault-" + serial, Time: schemas.At(at), Identity: schemas.Identity{ID: "vault:accessor/abc", Kind: schemas.KindToken},
		Source: schemas.Source{Family: schemas.FamilyIssuance, Format: issueuse.FormatVault}, Action: "vault:update:pki/issue/web",
		Outcome:  schemas.Outcome{Result: schemas.ResultSuccess},
		Issuance: &schemas.Issuance{Credential: serial, CredentialType: "x509_certificate", Subject: names[0], SANs: names[1:], Issuer: "vault:pki"},
	}
}

func TestShadowCertificate(t *testing.T) {
	base := issueuse.DefaultConfig()
	base.OrgDomains = []string{"Example.com."}
	api := []string{"api.example.com", "www.example.com"}
	mapped := base
	mapped.IssuerCAs = map[string][]string{"cert-manager:clusterissuer/letsencrypt-prod": {"let's encrypt"}}
	approved := base
	approved.ApprovedCAs = []string{"Let's Encrypt", "DigiCert"}
	tests := []struct {
		name     string
		cfg      issueuse.Config
		logged   []schemas.Event // sanctioned issuance before the CT entry
		serial   string
		issuerO  string
		names    []string
		wantSev  schemas.Severity
		minScore int
	}{
		{name: "logged by cert-manager (names)", cfg: base, logged: []schemas.Event{certManagerIssued(t, "letsencrypt-prod", []string{"WWW.example.com", "api.example.com"}, now.Add(-10*time.Minute))},
			serial: "04a1", issuerO: "Let's Encrypt", names: api},
		{name: "logged by Vault (serial)", cfg: base, logged: []schemas.Event{vaultIssued("00:4a:1b:2c", api, now.Add(-time.Hour))},
			serial: "4A1B2C", issuerO: "Let's Encrypt", names: api},
		{name: "a second certificate for names logged by serial", cfg: base, logged: []schemas.Event{vaultIssued("4a:1b:2c", api, now.Add(-time.Hour))},
			serial: "77ee", issuerO: "Let's Encrypt", names: api, wantSev: schemas.SeverityHigh, minScore: 80},
		{name: "nobody logged it", cfg: base, serial: "05ff", issuerO: "Let's Encrypt", names: []string{"login.example.com"},
			wantSev: schemas.SeverityHigh, minScore: 80},
		{name: "wildcard for the organization", cfg: base, serial: "05ff", issuerO: "Let's Encrypt", names: []string{"*.example.com"},
			wantSev: schemas.SeverityHigh, minScore: 80},
		{name: "not the organization's names", cfg: base, serial: "05ff", issuerO: "Let's Encrypt", names: []string{"example.com.evil.net", "notexample.com"}},
		{name: "logged too long ago", cfg: base, logged: []schemas.Event{certManagerIssued(t, "letsencrypt-prod", api, now.Add(-72*time.Hour))},
			serial: "04a1", issuerO: "Let's Encrypt", names: api, wantSev: schemas.SeverityHigh, minScore: 80},
		{name: "logged names, CA of the issuer", cfg: mapped, logged: []schemas.Event{certManagerIssued(t, "letsencrypt-prod", api, now.Add(-10*time.Minute))},
			serial: "04a1", issuerO: "Let's Encrypt", names: api},
		{name: "logged names, another CA", cfg: mapped, logged: []schemas.Event{certManagerIssued(t, "letsencrypt-prod", api, now.Add(-10*time.Minute))},
			serial: "04a1", issuerO: "Rogue Trust CA", names: api, wantSev: schemas.SeverityHigh, minScore: 80},
		{name: "unlogged, approved CA", cfg: approved, serial: "05ff", issuerO: "Let's Encrypt", names: api,
			wantSev: schemas.SeverityMedium, minScore: 65},
		{name: "unlogged, CA the organization does not use", cfg: approved, serial: "05ff", issuerO: "Rogue Trust CA", names: api,
			wantSev: schemas.SeverityHigh, minScore: 95},
		{name: "disabled without org domains", cfg: issueuse.DefaultConfig(), serial: "05ff", issuerO: "Let's Encrypt", names: api},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := issueuse.New(tt.cfg, links{}.lookup)
			for i := range tt.logged {
				ev := &tt.logged[i]
				if got := d.Detect(detectortest.Input(&baseline.Profile{Identity: ev.Identity}, ev), nil); len(got) != 0 {
					t.Fatalf("a sanctioned issuance raised %+v", got)
				}
			}
			ct := ctEvent(t, tt.serial, tt.issuerO, tt.names, now, 1)
			got := d.Detect(detectortest.Input(&baseline.Profile{Identity: ct.Identity}, &ct), nil)
			f, ok := detectortest.Single(t, got, tt.wantSev != "")
			if !ok {
				return
			}
			serial := strings.TrimLeft(strings.ToLower(tt.serial), "0")
			if f.Severity != tt.wantSev || f.Score < tt.minScore || f.Technique != issueuse.TechniqueShadow || f.Identity != ct.Identity ||
				f.ID != schemas.FindingID(issueuse.Name, ct.Identity.ID, "shadow_certificate", serial) ||
				!strings.Contains(f.Title, strings.TrimPrefix(tt.names[0], "*.")) || !strings.Contains(f.Explanation, "previous 48h") {
				t.Errorf("finding: %+v", f)
			}
			// The same certificate in another CT log is the same finding,
			// already made.
			again := ctEvent(t, tt.serial, tt.issuerO, tt.names, now.Add(time.Minute), 2)
			if dup := d.Detect(detectortest.Input(&baseline.Profile{Identity: again.Identity}, &again), nil); len(dup) != 0 {
				t.Fatalf("the certificate was reported twice: %+v", dup)
			}
		})
	}
}

func TestFormatsAreTheDecoders(t *testing.T) {
	for got, want := range map[string]string{
		issueuse.FormatCT: issuance.CTCertstreamFormat, issueuse.FormatCertManager: issuance.CertManagerFormat,
		issueuse.FormatSPIRE: issuance.SPIREServerFormat, issueuse.FormatVault: issuance.Format,
	} {
		if got != want {
			t.Errorf("format %q, decoder's %q", got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := issueuse.Config{
		BrokerIdentities: []string{"["}, OrgDomains: []string{"*.example.com", "com"},
		SanctionedFormats: []string{"", issueuse.FormatCT}, IssuerCAs: map[string][]string{"x": nil}, ApprovedCAs: []string{""},
	}
	if errs := bad.Validate(); len(errs) != 11 {
		t.Fatalf("bad config: %d errors, want 11: %v", len(errs), errs)
	}
	if errs := issueuse.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	if issueuse.New(issueuse.DefaultConfig(), nil).Name() != "issuance_use" {
		t.Fatal("name")
	}
}

func BenchmarkDetect(b *testing.B) {
	p := detectortest.History(now, 7*24, 3, "10.20.1.7", "s3:GetObject")
	cfg := issueuse.DefaultConfig()
	cfg.OrgDomains = []string{"example.com"}
	cfg.MaxCredentials, cfg.MaxCertificates = 1024, 1024 // firing inputs cycle through 4096, forgotten before they recur
	ls := links{}
	for i := range 4096 {
		c := fmt.Sprint("ASIA", i)
		ls[c] = ingest.Link{Credential: c, Identity: etl, IssuedAt: now.Add(-time.Minute)}
	}
	run := func(b *testing.B, ins []detectors.Input, wantFindings bool) {
		b.Helper()
		d := issueuse.New(cfg, ls.lookup)
		dst := make([]schemas.Finding, 0, 4)
		for i := range ins { // the first use of each credential is judged before timing
			d.Detect(&ins[i], dst[:0])
		}
		detectortest.BenchmarkInputs(b, d, ins, wantFindings)
	}
	one := func(ev schemas.Event) []detectors.Input { return []detectors.Input{*detectortest.Input(p, &ev)} }
	many := func(mk func(i int) schemas.Event) []detectors.Input {
		ins := make([]detectors.Input, 4096)
		for i := range ins {
			ev := mk(i)
			ins[i] = *detectortest.Input(p, &ev)
		}
		return ins
	}
	b.Run("quiet_no_credential", func(b *testing.B) {
		run(b, one(detectortest.Event(now, "s3:GetObject", "10.20.1.7")), false)
	})
	b.Run("quiet_judged_credential", func(b *testing.B) {
		run(b, one(use(etl, now, "ASIA1", "10.20.1.7")), false)
	})
	b.Run("quiet_unlinked_credential", func(b *testing.B) {
		run(b, one(use(etl, now, "AKIASTATIC", "10.20.1.7")), false)
	})
	b.Run("quiet_ct_other_names", func(b *testing.B) {
		run(b, one(ctEvent(b, "0abc", "Let's Encrypt", []string{"shop.other.net", "www.other.net"}, now, 1)), false)
	})
	b.Run("firing_handoff", func(b *testing.B) {
		ins := many(func(i int) schemas.Event { return use(reporting, now, fmt.Sprint("ASIA", i), "10.20.1.7") })
		for i := range ins {
			ins[i].Learning = true // the hand-off alone
		}
		run(b, ins, true)
	})
	b.Run("firing_shadow_certificate", func(b *testing.B) {
		tmpl := ctEvent(b, "0abc", "Let's Encrypt", []string{"api.example.com", "www.example.com"}, now, 1)
		run(b, many(func(i int) schemas.Event {
			ev := tmpl
			is := *tmpl.Issuance
			is.Credential = fmt.Sprintf("%x", 0x10000+i)
			ev.Issuance, ev.Credential.ID = &is, is.Credential
			return ev
		}), true)
	})
}
