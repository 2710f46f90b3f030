package gen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// small is a population that keeps most tests quick under -race.
var small = Config{Seed: 7, Workloads: 24, Roles: 16, APIKeys: 16, VaultClients: 8, EventsPerIdentityHour: 1}

type run struct {
	recs   []Record
	labels []Label
	hash   string
}

func generate(t testing.TB, cfg Config) run {
	t.Helper()
	h := sha256.New()
	var out run
	labels, err := Generate(cfg, func(r Record) error {
		h.Write([]byte(r.Format))
		h.Write([]byte{0})
		h.Write(r.Key)
		h.Write([]byte{0})
		h.Write(r.Value)
		h.Write([]byte(r.Time.Format(time.RFC3339Nano)))
		out.recs = append(out.recs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	out.labels = labels
	out.hash = hex.EncodeToString(h.Sum(nil))
	return out
}

func with(c Config, f func(*Config)) Config { f(&c); return c }

func TestDeterminism(t *testing.T) {
	t.Parallel()
	cfg := with(small, func(c *Config) { c.Attacks, c.Malformed = true, 12 })
	a, b := generate(t, cfg), generate(t, cfg)
	if a.hash != b.hash || len(a.recs) != len(b.recs) {
		t.Fatalf("same config gave different output: %s (%d records) vs %s (%d)", a.hash, len(a.recs), b.hash, len(b.recs))
	}
	if !slices.EqualFunc(a.labels, b.labels, func(x, y Label) bool { return x == y }) {
		t.Fatalf("labels differ:\n%v\n%v", a.labels, b.labels)
	}
	c := generate(t, with(cfg, func(c *Config) { c.Seed++ }))
	if c.hash == a.hash {
		t.Fatal("a different seed gave identical output")
	}
}

// Injecting attacks adds records but leaves the normal traffic unchanged.
func TestAttacksDoNotPerturbNormalTraffic(t *testing.T) {
	t.Parallel()
	plain := generate(t, small)
	attacked := generate(t, with(small, func(c *Config) { c.Attacks = true }))
	seen := make(map[string]int, len(plain.recs))
	for _, r := range plain.recs {
		seen[string(r.Value)]++
	}
	extra := 0
	for _, r := range attacked.recs {
		if seen[string(r.Value)] > 0 {
			seen[string(r.Value)]--
		} else {
			extra++
		}
	}
	for v, n := range seen {
		if n != 0 {
			t.Fatalf("normal record missing from the attacked run: %.200s", v)
		}
	}
	if extra == 0 || extra > 400 {
		t.Fatalf("attacked run has %d extra records, want the attack records only", extra)
	}
}

func TestTimeOrder(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		with(small, func(c *Config) { c.Attacks, c.Malformed = true, 20 }),
		with(small, func(c *Config) {
			c.Duration, c.Start = 90*time.Minute, time.Date(2024, 2, 29, 23, 17, 5, 0, time.FixedZone("x", 3600))
		}),
	} {
		run := generate(t, cfg)
		start, dur := cfg.Start.UTC(), cfg.Duration
		if cfg.Start.IsZero() {
			start = DefaultStart
		}
		if dur == 0 {
			dur = DefaultDuration
		}
		for i, r := range run.recs {
			if i > 0 && r.Time.Before(run.recs[i-1].Time) {
				t.Fatalf("record %d at %v is before record %d at %v", i, r.Time, i-1, run.recs[i-1].Time)
			}
			if r.Time.Location() != time.UTC {
				t.Fatalf("record %d time %v is not UTC", i, r.Time)
			}
			if r.Time.Before(start) || r.Time.After(start.Add(dur+time.Minute)) {
				t.Fatalf("record %d at %v is outside the run %v + %v", i, r.Time, start, dur)
			}
		}
	}
}

func TestVolume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      Config
		min, max int
	}{
		{"default week", Config{Seed: 1}, 100_000, 220_000},
		{"small day", with(small, func(c *Config) { c.Duration = 24 * time.Hour }), 1_500, 10_000},
		{"busy small day", with(small, func(c *Config) { c.Duration, c.EventsPerIdentityHour = 24*time.Hour, 6 }), 9_000, 60_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.cfg.Workloads == 0 {
				t.Skip("full week in -short mode")
			}
			run := generate(t, tt.cfg)
			n := len(run.recs)
			counts := map[string]int{}
			for _, r := range run.recs {
				counts[r.Format]++
			}
			t.Logf("%d records: %v", n, counts)
			if n < tt.min || n > tt.max {
				t.Fatalf("%d records, want %d..%d", n, tt.min, tt.max)
			}
			for _, f := range Formats {
				if counts[f] < n/20 {
					t.Errorf("format %s has only %d of %d records", f, counts[f], n)
				}
			}
		})
	}
}

// Seasonality: API keys are busier in business hours than at night.
func TestSeasonality(t *testing.T) {
	t.Parallel()
	run := generate(t, Config{Seed: 3, Workloads: 2, Roles: 1, VaultClients: 1, APIKeys: 60})
	var day, night int
	for _, r := range run.recs {
		if r.Format != FormatKong || r.Time.Weekday() == time.Saturday || r.Time.Weekday() == time.Sunday {
			continue
		}
		switch h := r.Time.Hour(); {
		case h >= 9 && h < 17:
			day++
		case h < 4 || h >= 21:
			night++
		}
	}
	if day < 5*night {
		t.Fatalf("kong weekday records: %d in 09-17 UTC vs %d in 21-04 UTC; want a business-hours profile", day, night)
	}
}

// Typed views of the key fields of each format, as a decoder reads them.
type envoyRec struct {
	StartTime       string `json:"start_time"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	ResponseCode    int    `json:"response_code"`
	UpstreamCluster string `json:"upstream_cluster"`
	PeerSAN         string `json:"downstream_peer_uri_san"`
	LocalSAN        string `json:"downstream_local_uri_san"`
	Remote          string `json:"downstream_remote_address"`
	Details         string `json:"response_code_details"`
	RequestID       string `json:"request_id"`
	UserAgent       string `json:"user_agent"`
}

type kongRec struct {
	StartedAt int64 `json:"started_at"`
	Request   struct {
		Method string `json:"method"`
		URI    string `json:"uri"`
		Size   int64  `json:"size"`
	} `json:"request"`
	Response struct {
		Status int   `json:"status"`
		Size   int64 `json:"size"`
	} `json:"response"`
	AuthenticatedEntity struct {
		ID string `json:"id"`
	} `json:"authenticated_entity"`
	Consumer struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"consumer"`
	ClientIP string `json:"client_ip"`
	Route    struct {
		Name string `json:"name"`
	} `json:"route"`
	Service struct {
		Name string `json:"name"`
	} `json:"service"`
}

type ctRec struct {
	EventTime    string `json:"eventTime"`
	EventSource  string `json:"eventSource"`
	EventName    string `json:"eventName"`
	EventID      string `json:"eventID"`
	AWSRegion    string `json:"awsRegion"`
	SourceIP     string `json:"sourceIPAddress"`
	UserAgent    string `json:"userAgent"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
	Recipient    string `json:"recipientAccountId"`
	UserIdentity struct {
		Type           string `json:"type"`
		ARN            string `json:"arn"`
		AccessKeyID    string `json:"accessKeyId"`
		SessionContext struct {
			SessionIssuer struct {
				Type     string `json:"type"`
				ARN      string `json:"arn"`
				UserName string `json:"userName"`
			} `json:"sessionIssuer"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
}

type vaultRec struct {
	Time string `json:"time"`
	Type string `json:"type"`
	Auth struct {
		Accessor string `json:"accessor"`
		Metadata struct {
			SAName      string `json:"service_account_name"`
			SANamespace string `json:"service_account_namespace"`
		} `json:"metadata"`
	} `json:"auth"`
	Request struct {
		ID            string `json:"id"`
		Operation     string `json:"operation"`
		Path          string `json:"path"`
		RemoteAddress string `json:"remote_address"`
	} `json:"request"`
	Response *struct {
		Auth *struct {
			Accessor      string `json:"accessor"`
			LeaseDuration int64  `json:"lease_duration"`
		} `json:"auth"`
	} `json:"response"`
	Error string `json:"error"`
}

// decode decodes a record strictly: valid UTF-8 JSON into its format's
// typed view.
func decode(r Record) (any, error) {
	if !utf8.Valid(r.Value) {
		return nil, errors.New("invalid UTF-8")
	}
	var v any
	switch r.Format {
	case FormatEnvoy:
		v = &envoyRec{}
	case FormatKong:
		v = &kongRec{}
	case FormatCloudTrail:
		v = &ctRec{}
	case FormatVault:
		v = &vaultRec{}
	default:
		return nil, errors.New("unknown format " + r.Format)
	}
	return v, json.Unmarshal(r.Value, v)
}

func TestRecordsValid(t *testing.T) {
	t.Parallel()
	run := generate(t, with(small, func(c *Config) { c.Attacks, c.Malformed, c.Duration = true, 16, 3*24*time.Hour }))
	eventIDs := map[string]bool{}
	vaultEntries := map[string][]string{}
	for i, r := range run.recs {
		if r.Malformed {
			continue
		}
		if bytes.ContainsAny(r.Value, "\n") || !json.Valid(r.Value) {
			t.Fatalf("record %d is not one line of valid JSON: %.300s", i, r.Value)
		}
		v, err := decode(r)
		if err != nil {
			t.Fatalf("record %d (%s): %v: %.300s", i, r.Format, err, r.Value)
		}
		key := string(r.Key)
		var when time.Time
		var bad string
		switch x := v.(type) {
		case *envoyRec:
			when, err = time.Parse(time.RFC3339Nano, x.StartTime)
			switch {
			case !strings.HasPrefix(x.UpstreamCluster, "inbound|"):
				bad = "upstream_cluster"
			case !strings.HasPrefix(x.PeerSAN, "spiffe://prod.example.org/ns/") || x.PeerSAN != key:
				bad = "downstream_peer_uri_san / key"
			case !strings.HasPrefix(x.LocalSAN, "spiffe://prod.example.org/ns/") || x.LocalSAN == x.PeerSAN:
				bad = "downstream_local_uri_san"
			case x.ResponseCode < 200 || x.Method == "" || !strings.HasPrefix(x.Path, "/") || x.RequestID == "" || !strings.HasPrefix(x.Remote, "10."):
				bad = "request fields"
			}
		case *kongRec:
			when = time.UnixMilli(x.StartedAt).UTC()
			switch {
			case x.AuthenticatedEntity.ID == "" || key != "apikey:kong:"+x.AuthenticatedEntity.ID:
				bad = "authenticated_entity.id / key"
			case x.Consumer.ID == "" || x.Consumer.Username == "" || x.ClientIP == "" || x.Route.Name == "" || x.Service.Name == "":
				bad = "consumer/route/service/client_ip"
			case x.Response.Status < 200 || x.Request.Method == "" || !strings.HasPrefix(x.Request.URI, "/api/"):
				bad = "request/response"
			}
		case *ctRec:
			when, err = time.Parse(time.RFC3339, x.EventTime)
			ui := x.UserIdentity
			iss := ui.SessionContext.SessionIssuer
			switch {
			case ui.Type != "AssumedRole" || iss.Type != "Role" || iss.ARN != "arn:aws:iam::111122223333:role/"+iss.UserName:
				bad = "userIdentity"
			case key != "aws:role/111122223333/"+iss.UserName:
				bad = "key"
			case !strings.HasPrefix(ui.AccessKeyID, "ASIA") || len(ui.AccessKeyID) != 20:
				bad = "accessKeyId"
			case !strings.HasSuffix(x.EventSource, ".amazonaws.com") || x.EventName == "" || x.AWSRegion == "" || x.Recipient != account || x.SourceIP == "" || x.UserAgent == "":
				bad = "event fields"
			case eventIDs[x.EventID] || len(x.EventID) != 36:
				bad = "eventID not a unique UUID"
			case (x.ErrorCode == "") != (x.ErrorMessage == ""):
				bad = "errorCode without errorMessage"
			}
			eventIDs[x.EventID] = true
		case *vaultRec:
			when, err = time.Parse(time.RFC3339Nano, x.Time)
			switch {
			case x.Type != "request" && x.Type != "response":
				bad = "type"
			case x.Request.ID == "" || x.Request.Path == "" || x.Request.Operation == "" || x.Request.RemoteAddress == "":
				bad = "request"
			case x.Type == "response" && x.Response == nil:
				bad = "response"
			case x.Type == "response" && x.Request.Path == "auth/kubernetes/login" && x.Error == "" && (x.Response.Auth == nil || x.Response.Auth.LeaseDuration <= 0 || !strings.HasPrefix(x.Response.Auth.Accessor, "hmac-sha256:")):
				bad = "login response auth"
			case x.Auth.Accessor != "" && key != "k8s:sa/default/"+x.Auth.Metadata.SANamespace+"/"+x.Auth.Metadata.SAName:
				bad = "key"
			}
			vaultEntries[x.Request.ID] = append(vaultEntries[x.Request.ID], x.Type)
		}
		if err != nil {
			t.Fatalf("record %d (%s): time: %v", i, r.Format, err)
		}
		if bad != "" {
			t.Fatalf("record %d (%s): bad %s: %.600s", i, r.Format, bad, r.Value)
		}
		if !when.Equal(r.Time) {
			t.Fatalf("record %d (%s): Record.Time %v, record says %v", i, r.Format, r.Time, when)
		}
	}
	for id, types := range vaultEntries {
		if !slices.Equal(types, []string{"request", "response"}) {
			t.Fatalf("vault request %s has entries %v, want request then response", id, types)
		}
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 16} {
		run := generate(t, with(small, func(c *Config) { c.Malformed, c.Duration = n, 2*24*time.Hour }))
		var got []Record
		for _, r := range run.recs {
			if r.Malformed {
				got = append(got, r)
			}
		}
		if len(got) != n {
			t.Fatalf("Malformed=%d: got %d malformed records", n, len(got))
		}
		formats := map[string]bool{}
		for _, r := range got {
			formats[r.Format] = true
			if _, err := decode(r); err == nil {
				t.Errorf("malformed %s record decodes: %.300s", r.Format, r.Value)
			}
			if len(r.Key) == 0 {
				t.Errorf("malformed %s record has no key", r.Format)
			}
		}
		if n >= 4 && len(formats) != len(Formats) {
			t.Errorf("malformed records cover formats %v, want all", formats)
		}
		if n == 16 {
			first, last := got[0].Time, got[len(got)-1].Time
			if last.Sub(first) < 36*time.Hour {
				t.Errorf("malformed records span %v..%v, want them spread over the week", first, last)
			}
			var kinds [numMal]int
			for _, r := range got {
				switch v := r.Value; {
				case !utf8.Valid(v):
					kinds[malBadUTF8]++
				case !bytes.HasPrefix(v, []byte("{")):
					kinds[malNotJSON]++
				case !json.Valid(v):
					kinds[malTruncated]++
				default:
					kinds[malWrongType]++
				}
			}
			for k, c := range kinds {
				if c == 0 {
					t.Errorf("no malformed record of kind %d: %v", k, kinds)
				}
			}
		}
	}
}

func TestAttackLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		attacks bool
	}{
		{"week with attacks", with(small, func(c *Config) { c.Attacks = true }), true},
		{"week without attacks", small, false},
		{"one day with attacks", with(small, func(c *Config) { c.Attacks, c.Duration = true, 24*time.Hour }), true},
		{"other seed", with(small, func(c *Config) { c.Attacks, c.Seed = true, 99 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := generate(t, tt.cfg)
			if !tt.attacks {
				if len(run.labels) != 0 {
					t.Fatalf("labels without Attacks: %v", run.labels)
				}
				return
			}
			start := DefaultStart
			dur := tt.cfg.Duration
			if dur == 0 {
				dur = DefaultDuration
			}
			var names []string
			for _, l := range run.labels {
				names = append(names, l.Scenario)
				if l.End.Before(l.Start) || l.Start.Before(start.Add(dur*4/7)) || l.End.After(start.Add(dur)) {
					t.Errorf("%s: window %v..%v outside the last part of the run", l.Scenario, l.Start, l.End)
				}
				if l.Detail == "" || l.Identity == "" {
					t.Errorf("%s: empty identity or detail", l.Scenario)
				}
				n := 0
				for _, r := range run.recs {
					if string(r.Key) == l.Identity && !r.Time.Before(l.Start) && !r.Time.After(l.End) {
						n++
					}
				}
				if n < 10 {
					t.Errorf("%s: only %d records of %s in %v..%v", l.Scenario, n, l.Identity, l.Start, l.End)
				}
			}
			if !slices.Equal(names, Scenarios) {
				t.Fatalf("scenarios %v, want %v", names, Scenarios)
			}
			checkScenarios(t, run)
		})
	}
}

// checkScenarios checks that each attack shows the signal it is meant to.
func checkScenarios(t *testing.T, run run) {
	t.Helper()
	in := func(r Record, l Label) bool { return !r.Time.Before(l.Start) && !r.Time.After(l.End) }
	good := run.recs[:0:0]
	for _, r := range run.recs {
		if !r.Malformed {
			good = append(good, r)
		}
	}
	run.recs = good
	for _, l := range run.labels {
		switch l.Scenario {
		case ScenarioStolenCredential:
			keys := map[string]bool{}
			usual := map[string]bool{}
			var external int
			var newActions []string
			for _, r := range run.recs {
				if string(r.Key) != l.Identity {
					continue
				}
				var x ctRec
				if err := json.Unmarshal(r.Value, &x); err != nil {
					t.Fatal(err)
				}
				if r.Time.Before(l.Start) {
					keys[x.UserIdentity.AccessKeyID] = true
					usual[x.EventSource+x.EventName] = true
					continue
				}
				if in(r, l) && strings.HasPrefix(x.SourceIP, "203.0.113.") {
					external++
					if !keys[x.UserIdentity.AccessKeyID] {
						t.Errorf("stolen call uses access key %s never used by the role", x.UserIdentity.AccessKeyID)
					}
					if !usual[x.EventSource+x.EventName] {
						newActions = append(newActions, x.EventName)
					}
				}
			}
			if external < 12 || len(newActions) < 3 {
				t.Errorf("stolen credential: %d external calls, new actions %v", external, newActions)
			}
		case ScenarioPrivilegeProbing:
			denied, names := 0, map[string]bool{}
			for _, r := range run.recs {
				if string(r.Key) != l.Identity || !in(r, l) {
					continue
				}
				var x ctRec
				_ = json.Unmarshal(r.Value, &x)
				names[x.EventSource+x.EventName] = true
				if x.ErrorCode != "" {
					denied++
				}
			}
			if denied < 30 || len(names) < 20 || l.End.Sub(l.Start) > 20*time.Minute {
				t.Errorf("probing: %d denied, %d distinct actions in %v", denied, len(names), l.End.Sub(l.Start))
			}
		case ScenarioLateralMovement:
			known, fresh, rbac := map[string]bool{}, map[string]bool{}, 0
			for _, r := range run.recs {
				if string(r.Key) != l.Identity {
					continue
				}
				var x envoyRec
				_ = json.Unmarshal(r.Value, &x)
				if r.Time.Before(l.Start) {
					known[x.LocalSAN] = true
				} else if in(r, l) && !known[x.LocalSAN] {
					fresh[x.LocalSAN] = true
					if x.ResponseCode == 403 && x.Details == "rbac_access_denied_matched_policy[none]" {
						rbac++
					}
				}
			}
			if len(fresh) < 8 || rbac == 0 {
				t.Errorf("lateral movement: %d new peers, %d RBAC denials", len(fresh), rbac)
			}
		case ScenarioAPIKeySpike:
			before, during := 0, 0
			var big int64
			for _, r := range run.recs {
				if string(r.Key) != l.Identity {
					continue
				}
				switch {
				case r.Time.Before(l.Start):
					before++
				case in(r, l):
					during++
					var x kongRec
					_ = json.Unmarshal(r.Value, &x)
					big = max(big, x.Response.Size)
				}
			}
			hours := l.Start.Sub(DefaultStart).Hours()
			if float64(during) < 15*float64(before)/hours || big < 250_000 {
				t.Errorf("api key spike: %d requests in the hour vs %d in the %.0f hours before; largest response %d", during, before, hours, big)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Duration: -time.Hour},
		{Workloads: -1},
		{Malformed: -3},
		{EventsPerIdentityHour: -1},
		{Attacks: true, Workloads: 3},
	} {
		if _, err := Generate(cfg, func(Record) error { return nil }); err == nil {
			t.Errorf("Generate(%+v) = nil error", cfg)
		}
	}
}

func TestEmitErrorStops(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	n := 0
	_, err := Generate(small, func(Record) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("err %v after %d records, want stop after 10", err, n)
	}
}

func TestWriteLabels(t *testing.T) {
	t.Parallel()
	run := generate(t, with(small, func(c *Config) { c.Attacks, c.Duration = true, 2*24*time.Hour }))
	var buf bytes.Buffer
	if err := WriteLabels(&buf, run.labels); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(run.labels) {
		t.Fatalf("%d lines for %d labels", len(lines), len(run.labels))
	}
	for i, line := range lines {
		var l Label
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if l != run.labels[i] || !strings.Contains(line, `"scenario":`) {
			t.Fatalf("line %d = %s, want %+v", i, line, run.labels[i])
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Seed: 1, Attacks: true, Malformed: 20}
	var n, size int
	for b.Loop() {
		n, size = 0, 0
		if _, err := Generate(cfg, func(r Record) error { n++; size += len(r.Value); return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "records/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
	b.SetBytes(int64(size))
}

// Job-like roles run at a fixed minute every hour (or night), also when the
// run does not start on the hour.
func TestJobCadence(t *testing.T) {
	t.Parallel()
	for _, start := range []time.Time{DefaultStart, DefaultStart.Add(17*time.Minute + 3*time.Second)} {
		cfg := Config{Seed: 11, Workloads: 1, APIKeys: 1, VaultClients: 1, Roles: 40, Start: start, Duration: 48 * time.Hour}
		full, err := cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		hourly := map[string]bool{}
		for _, ro := range buildPopulation(full).roles {
			if ro.kind == roleHourly {
				hourly[ro.id] = true
			}
		}
		if len(hourly) == 0 {
			t.Fatal("no hourly role in 40")
		}
		runs := map[string]map[int64]bool{}
		for _, r := range generate(t, cfg).recs {
			if hourly[string(r.Key)] {
				if runs[string(r.Key)] == nil {
					runs[string(r.Key)] = map[int64]bool{}
				}
				runs[string(r.Key)][r.Time.Unix()/3600] = true
			}
		}
		for id := range hourly {
			if n := len(runs[id]); n < 47 || n > 49 {
				t.Errorf("start %v: hourly role %s ran in %d distinct hours of 48", start, id, n)
			}
		}
	}
}
