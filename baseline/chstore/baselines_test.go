package chstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/schemas"
	"github.com/nhisentry/nhisentry/schemas/migrations"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testBaseline(id string, version int64) *baseline.Baseline {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	return &baseline.Baseline{
		Identity:    schemas.Identity{ID: id, Kind: schemas.KindWorkload},
		Class:       "service",
		Cohort:      "pay/api",
		Version:     version,
		BuiltAt:     at.Add(time.Duration(version) * time.Minute),
		DataThrough: at,
		FirstSeen:   at.AddDate(0, 0, -20),
		LastSeen:    at.Add(-time.Minute),
		Events:      uint64(1000 * version),
		Known: []baseline.KnownSet{{Dim: "action", Values: []baseline.KnownValue{
			{Value: "GET /v1/payments/{id}", FirstSeen: at.AddDate(0, 0, -20), LastSeen: at, Count: uint64(version)},
		}}},
		Recent: []baseline.HourRollup{{Hour: at.Unix() / 3600, Events: 4, First: at, Last: at.Add(time.Minute)}},
	}
}

func jsonOf(t *testing.T, b *baseline.Baseline) string {
	t.Helper()
	j, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

func TestBaselinesNewestVersionWins(t *testing.T) {
	testBaselinesNewestVersionWins(t, chstoretest.Open)
}

func testBaselinesNewestVersionWins(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	const a, b, c = "spiffe://example.org/ns/pay/sa/api", "aws:role/123456789012/it's", "k8s:sa/prod/ci/builder"
	// v2 of a is saved before v1 arrives late: the version decides, not
	// the order of the inserts.
	for _, batch := range [][]*baseline.Baseline{
		{testBaseline(a, 2), testBaseline(b, 1)},
		{testBaseline(a, 1), testBaseline(c, 5)},
		{testBaseline(b, 3)},
	} {
		if err := s.SaveBaselines(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int64{a: 2, b: 3, c: 5}

	tests := []struct {
		name  string
		ids   []string
		chunk int
		want  []string
	}{
		{"every identity", nil, 1000, []string{b, c, a}},
		{"every identity in chunks of one", nil, 1, []string{b, c, a}},
		{"given order, repeats and unknowns", []string{c, "nobody", a, c}, 1000, []string{c, a}},
		{"given order in chunks of two", []string{c, "nobody", a, b}, 2, []string{c, a, b}},
		{"none", []string{}, 1000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer chstore.SetChunks(tt.chunk, 1<<20)()
			var got []string
			err := s.LoadBaselines(ctx, tt.ids, func(bl *baseline.Baseline) error {
				got = append(got, bl.Identity.ID)
				if w := testBaseline(bl.Identity.ID, want[bl.Identity.ID]); jsonOf(t, bl) != jsonOf(t, w) {
					t.Errorf("%s: loaded\n%s\nwant\n%s", bl.Identity.ID, jsonOf(t, bl), jsonOf(t, w))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("loaded %q, want %q", got, tt.want)
			}
		})
	}

	var built time.Time
	var events uint64
	q := "SELECT built_at, events FROM " + s.Database() + ".baselines FINAL WHERE identity_id = 'k8s:sa/prod/ci/builder'"
	if err := s.Conn().QueryRow(ctx, q).Scan(&built, &events); err != nil {
		t.Fatal(err)
	}
	if w := testBaseline(c, 5); !built.Equal(w.BuiltAt) || events != w.Events {
		t.Errorf("columns built_at=%v events=%d, want %v %d", built, events, w.BuiltAt, w.Events)
	}

	for _, bad := range [][]*baseline.Baseline{{nil}, {{}}, {testBaseline(a, -1)}} {
		if err := s.SaveBaselines(ctx, bad); err == nil {
			t.Errorf("SaveBaselines(%v) succeeded", bad)
		}
	}
	stop := fmt.Errorf("stop")
	if err := s.LoadBaselines(ctx, nil, func(*baseline.Baseline) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
}

func TestMarkRoundTrip(t *testing.T) { testMarkRoundTrip(t, chstoretest.Open) }

func testMarkRoundTrip(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	if m, err := s.Mark(ctx); err != nil || !m.IsZero() {
		t.Fatalf("mark of a new store = %v, %v; want zero", m, err)
	}
	marks := []time.Time{
		time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 2, 11, 5, 7, 0, time.UTC),
		time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), // set back on purpose: the latest SetMark wins
	}
	for _, m := range marks {
		if err := s.SetMark(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := s.Mark(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(m) {
			t.Errorf("Mark = %v after SetMark(%v)", got, m)
		}
	}
	// Marks are whole seconds, like the ingest times Rollup compares them with.
	if err := s.SetMark(ctx, marks[1].Add(700*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Mark(ctx); !got.Equal(marks[1]) {
		t.Errorf("sub-second mark read back as %v", got)
	}
}

func TestDropBeforeDropsOnlyOldMonths(t *testing.T) {
	testDropBeforeDropsOnlyOldMonths(t, chstoretest.Open)
}

func testDropBeforeDropsOnlyOldMonths(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	db := s.Database()
	var evs []schemas.Event
	var findings []schemas.Finding
	for i, at := range []time.Time{
		time.Date(2026, 9, 30, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
	} {
		evs = append(evs, schemas.Event{
			ID: fmt.Sprintf("ev-%d", i), Time: schemas.At(at), IngestTime: schemas.At(at),
			Identity: schemas.Identity{ID: "aws:role/1/r"}, Action: "s3:GetObject",
		})
		findings = append(findings, schemas.Finding{ID: fmt.Sprintf("f-%d", i), FirstSeen: schemas.At(at), LastSeen: schemas.At(at)})
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFindings(ctx, findings); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Rollup(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBaselines(ctx, []*baseline.Baseline{testBaseline("aws:role/1/r", 1)}); err != nil {
		t.Fatal(err)
	}
	before := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) // the first instant of November
	tests := []struct {
		table   string
		dropped []string
		left    uint64
		wantErr string
	}{
		{table: "events", dropped: []string{"202609", "202610"}, left: 2},
		{table: "identity_hourly", dropped: []string{"202609", "202610"}, left: 2},
		{table: "identity_values", dropped: []string{"202609", "202610"}, left: 2},
		{table: "findings", dropped: []string{"202609", "202610"}, left: 2},
		{table: "response_audit", left: 0},
		{table: "baselines", wantErr: "not one of"},
		{table: "events; DROP TABLE x", wantErr: "not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			dropped, err := s.DropBefore(ctx, tt.table, before)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dropped, tt.dropped) {
				t.Errorf("dropped %q, want %q", dropped, tt.dropped)
			}
			// identity_values rows are per day and dimension; count the days.
			q := "SELECT count() FROM " + db + "." + tt.table + " FINAL"
			if tt.table == "identity_values" {
				q = "SELECT uniqExact(day) FROM " + db + ".identity_values"
			}
			if n := chstoretest.Count(t, s, q); n != tt.left {
				t.Errorf("%d rows left, want %d", n, tt.left)
			}
			// Again: nothing is left to drop.
			if again, err := s.DropBefore(ctx, tt.table, before); err != nil || len(again) != 0 {
				t.Errorf("second DropBefore = %q, %v", again, err)
			}
		})
	}
	if n := chstoretest.Count(t, s, "SELECT count() FROM "+db+".baselines"); n != 1 {
		t.Errorf("baselines has %d rows, want 1", n)
	}
}

// TestQueryTextsGolden writes the SQL the store runs, after the schema, to
// testdata/queries.golden.sql, which `make modern-clickhouse` runs on
// current ClickHouse; every text also runs here on the test server.
func TestQueryTextsGolden(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("-- Generated by TestQueryTextsGolden (go test ./baseline/chstore -run QueryTexts -update)\n")
	b.WriteString("-- from migrations.PrintSQL and chstore.QueryTexts, with placeholder values.\n")
	b.WriteString("-- deploy/local/modern-clickhouse.sh runs it on current ClickHouse.\n\n")
	if err := migrations.PrintSQL(&b, migrations.Target{DB: "nhisentry"}); err != nil {
		t.Fatal(err)
	}
	b.WriteString("-- A few events for the placeholder identities and times, so the queries\n")
	b.WriteString("-- below run on rows, not only on empty tables (not SQL the store runs).\n")
	b.WriteString(valuesSQL("nhisentry", queryFixture()))
	b.WriteString("-- chstore.QueryTexts\n\n")
	for _, st := range chstore.QueryTexts("nhisentry") {
		fmt.Fprintf(&b, "-- %s\n%s;\n\n", st.Name, st.SQL)
	}
	const golden = "testdata/queries.golden.sql"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("the store's SQL differs from %s (review, then go test ./baseline/chstore -run QueryTexts -update)", golden)
	}

	s := chstoretest.Open(t)
	if err := s.WriteEvents(context.Background(), queryFixture()); err != nil {
		t.Fatal(err)
	}
	for _, st := range chstore.QueryTexts(s.Database()) {
		if err := s.Conn().Exec(context.Background(), st.SQL); err != nil {
			t.Errorf("%s: %v\n%s", st.Name, err, st.SQL)
		}
	}
}

// queryFixture is events of QueryTexts' placeholder identities in its
// placeholder hours, ingested after its placeholder mark.
func queryFixture() []schemas.Event {
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	ingest := schemas.At(day.Add(10*time.Hour + 40*time.Minute))
	return []schemas.Event{
		{ID: "q-1", Time: schemas.At(day.Add(9*time.Hour + 30*time.Minute + 250*time.Millisecond)), IngestTime: ingest,
			Identity: schemas.Identity{ID: "spiffe://example.org/ns/pay/sa/api", Kind: schemas.KindWorkload, Name: "api"},
			Action:   "GET /v1/payments/{id}", Target: schemas.Target{Peer: "spiffe://example.org/ns/db/sa/ledger"},
			Actor: schemas.Actor{IP: "10.1.2.3", Namespace: "pay", Workload: "api"}, Source: schemas.Source{Cluster: "prod"},
			Outcome: schemas.Outcome{Result: schemas.ResultSuccess}, BytesOut: 1<<50 - 2, DurationMS: 12.5},
		{ID: "q-2", Time: schemas.At(day.Add(10*time.Hour + 20*time.Minute)), IngestTime: ingest,
			Identity: schemas.Identity{ID: `aws:role/123456789012/it's\here`, Kind: schemas.KindRole},
			Action:   "sts:AssumeRole", Actor: schemas.Actor{IP: "2001:db8::1"},
			Outcome: schemas.Outcome{Result: schemas.ResultDenied}, BytesIn: 1023,
			Issuance: &schemas.Issuance{Credential: "ASIA1", Issuer: "sts", TTLSeconds: 3600}},
	}
}

// valuesSQL renders events as an INSERT of the columns the queries read.
func valuesSQL(db string, evs []schemas.Event) string {
	q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
	var b strings.Builder
	b.WriteString("INSERT INTO " + db + ".events (id, time, time_ns, ingest_time, cluster, identity_id, identity_kind, identity_name,\n" +
		"    actor_ip, actor_namespace, actor_workload, action, target_peer, outcome, bytes_in, bytes_out, duration_ms,\n" +
		"    issued_credential, issuer, issued_ttl_seconds) VALUES\n")
	for i, ev := range evs {
		is := ev.Issuance
		if is == nil {
			is = &schemas.Issuance{}
		}
		fmt.Fprintf(&b, "    (%s, %d, %d, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %d, %d, %g, %s, %s, %d)",
			q(ev.ID), ev.Time.Unix(), ev.Time.Nanosecond(), ev.IngestTime.Unix(), q(ev.Source.Cluster),
			q(ev.Identity.ID), q(string(ev.Identity.Kind)), q(ev.Identity.Name), q(ev.Actor.IP), q(ev.Actor.Namespace),
			q(ev.Actor.Workload), q(ev.Action), q(ev.Target.Peer), q(string(ev.Outcome.Result)), ev.BytesIn, ev.BytesOut,
			ev.DurationMS, q(is.Credential), q(is.Issuer), is.TTLSeconds)
		if i < len(evs)-1 {
			b.WriteString(",\n")
		}
	}
	b.WriteString(";\n\n")
	return b.String()
}
