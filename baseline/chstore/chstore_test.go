package chstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/schemas"
)

// opener gives a test a store on a fresh, migrated database: on the shared
// server (chstoretest.Open) or on a cluster (chstoretest.Cluster.Open), so
// one test body checks both schemas.
type opener = func(testing.TB) *chstore.Store

func testEvents(n int, base time.Time) []schemas.Event {
	evs := make([]schemas.Event, n)
	for i := range evs {
		evs[i] = schemas.Event{
			ID:         fmt.Sprintf("ev-%d", i),
			Time:       schemas.At(base.Add(time.Duration(i) * time.Minute)),
			IngestTime: schemas.At(base),
			Source:     schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail", Account: "123"},
			Identity:   schemas.Identity{ID: fmt.Sprintf("aws:role/123/r%d", i%3), Kind: schemas.KindRole},
			Actor:      schemas.Actor{IP: fmt.Sprintf("10.0.%d.7", i%2)},
			Action:     fmt.Sprintf("s3:Get%d", i%4),
			Outcome:    schemas.Outcome{Result: schemas.ResultSuccess, Status: 200},
			BytesOut:   100,
			Issuance:   &schemas.Issuance{SANs: []string{"a", "b"}},
			Provenance: schemas.Provenance{Topic: "t", Partition: 1, Offset: int64(i)},
		}
	}
	evs[5].Outcome.Result = schemas.ResultDenied
	return evs
}

func TestMigrateIsIdempotent(t *testing.T) { testMigrateIsIdempotent(t, chstoretest.Open) }

func testMigrateIsIdempotent(t *testing.T, open opener) {
	s := open(t)
	applied, err := s.Migrate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".schema_migrations"); n < 2 {
		t.Fatalf("schema_migrations has %d rows", n)
	}
}

func TestWriteEventsReplayIsInvisible(t *testing.T) {
	testWriteEventsReplayIsInvisible(t, chstoretest.Open)
}

func testWriteEventsReplayIsInvisible(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 2, 10, 0, 0, 123456000, time.UTC)
	evs := testEvents(90, base)
	for range 2 { // the second write is a replay of the same batch
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".events FINAL"); n != 90 {
		t.Fatalf("events FINAL = %d, want 90", n)
	}
	var ns uint32
	var sans []string
	if err := s.Conn().QueryRow(ctx, "SELECT time_ns, issued_sans FROM "+s.Database()+".events WHERE id = 'ev-0' LIMIT 1").Scan(&ns, &sans); err != nil {
		t.Fatal(err)
	}
	if ns != 123456000 || len(sans) != 2 {
		t.Fatalf("time_ns=%d sans=%v", ns, sans)
	}
}

func TestLoadIssuancesKeepsTheLatest(t *testing.T) {
	testLoadIssuancesKeepsTheLatest(t, chstoretest.Open)
}

func testLoadIssuancesKeepsTheLatest(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	base := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	evs := testEvents(6, base)[:3]
	evs[0].Issuance = &schemas.Issuance{Credential: "ASIAX", Subject: "aws:role/123/old", TTLSeconds: 60}
	evs[1].Issuance = &schemas.Issuance{Credential: "ASIAX", Subject: "aws:role/123/new", TTLSeconds: 3600, Issuer: "aws:sts"}
	evs[2].Issuance = nil
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var got []schemas.Event
	if err := s.LoadIssuances(ctx, func(ev *schemas.Event) { got = append(got, *ev) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Issuance.Subject != "aws:role/123/new" || got[0].Issuance.TTLSeconds != 3600 ||
		!got[0].Time.Equal(base.Add(time.Minute).Truncate(time.Second)) || got[0].Issuance.Issuer != "aws:sts" {
		t.Fatalf("got %+v", got)
	}
}

func TestSentFindingsGivesTheNewestRevision(t *testing.T) {
	testSentFindingsGivesTheNewestRevision(t, chstoretest.Open)
}

func testSentFindingsGivesTheNewestRevision(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	first := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	f := schemas.Finding{ID: "f1", Detector: "d", Identity: schemas.Identity{ID: "spiffe://t/ns/a/sa/b"}, FirstSeen: schemas.At(first), LastSeen: schemas.At(first), Count: 1}
	later := f
	later.Revision, later.Count, later.LastSeen = 2, 7, schemas.At(first.Add(time.Hour))
	other := schemas.Finding{ID: "f2", Detector: "d", Identity: schemas.Identity{ID: "aws:role/1/x"}, FirstSeen: schemas.At(first), LastSeen: schemas.At(first)}
	for _, batch := range [][]schemas.Finding{{f, other}, {later}} {
		if err := s.WriteFindings(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]engine.Sent{}
	if err := s.SentFindings(ctx, time.Now().Add(-time.Hour), func(f engine.Sent) { got[f.ID] = f }); err != nil {
		t.Fatal(err)
	}
	want := map[string]engine.Sent{
		"f1": {ID: "f1", Identity: "spiffe://t/ns/a/sa/b", Count: 7, Revision: 2, FirstSeen: first},
		"f2": {ID: "f2", Identity: "aws:role/1/x", Count: 1, Revision: 0, FirstSeen: first},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for id, w := range want {
		if g := got[id]; g.ID != w.ID || g.Identity != w.Identity || g.Count != w.Count || g.Revision != w.Revision || !g.FirstSeen.Equal(w.FirstSeen) {
			t.Errorf("%s: got %+v, want %+v", id, g, w)
		}
	}
	if err := s.SentFindings(ctx, time.Now().Add(time.Hour), func(f engine.Sent) { t.Errorf("stored before the time asked: %+v", f) }); err != nil {
		t.Fatal(err)
	}
}

// TestInstancesMigrateTogether starts four stores on one new database at
// once, as replicas of one deployment do, a few times over: every one must
// come up, and the schema must be whole.
func TestInstancesMigrateTogether(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), testInstancesMigrateTogether)
	}
}

func testInstancesMigrateTogether(t *testing.T) {
	cfg := chstoretest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	const instances = 4
	stores := make([]*chstore.Store, instances)
	for i := range stores {
		s, err := chstore.Open(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			chstoretest.Unavailable(t, err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	t.Cleanup(func() { _ = stores[0].Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database) })
	start := make(chan struct{})
	errs := make(chan error, instances)
	for _, s := range stores {
		go func() {
			<-start
			_, err := s.Migrate(ctx)
			errs <- err
		}()
	}
	close(start)
	for range instances {
		if err := <-errs; err != nil {
			t.Fatalf("a store starting with %d others: %v", instances-1, err)
		}
	}
	applied, err := stores[0].Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("after the concurrent start, Migrate applied %v (%v); want nothing left", applied, err)
	}
	var n uint64
	if err := stores[0].Conn().QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = 'findings' AND name IN ('count', 'revision')", cfg.Database).Scan(&n); err != nil || n != 2 {
		t.Fatalf("findings has %d of the columns the later migrations add (%v)", n, err)
	}
}
