//go:build unix

package chstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestCluster runs the store's tests on the schema `migrate --cluster`
// creates — Replicated local tables and Distributed tables over two shards
// of ClickHouse 18.16 with ZooKeeper — and checks what only a cluster has:
// rows spread over the shards with all of one identity's on one shard, and
// the applied migrations known to every server.
func TestCluster(t *testing.T) {
	c := chstoretest.StartCluster(t)
	for _, tt := range []struct {
		name string
		run  func(*testing.T, opener)
	}{
		{"migrate is idempotent", testMigrateIsIdempotent},
		{"a replayed write is invisible", testWriteEventsReplayIsInvisible},
		{"issuances keep the latest", testLoadIssuancesKeepsTheLatest},
		{"sent findings give the newest revision", testSentFindingsGivesTheNewestRevision},
		{"the newest baseline wins", testBaselinesNewestVersionWins},
		{"the rollup mark round-trips", testMarkRoundTrip},
		{"retention drops only old months", testDropBeforeDropsOnlyOldMonths},
		{"rollups and histories match the events", testRollupHistoriesMatchEvents},
		{"odd identity ids", testRollupOddIdentityIDs},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c.Open) })
	}

	t.Run("one identity, one shard", func(t *testing.T) {
		s := c.Open(t)
		ctx := context.Background()
		evs := testEvents(300, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
		for i := range evs {
			evs[i].Identity.ID = evs[i].Identity.ID + "-" + string(rune('a'+i%20)) // 60 identities
			// Half in October, for retention on every shard.
			if i%2 == 0 {
				evs[i].Time = schemas.At(evs[i].Time.AddDate(0, 0, -7))
			}
		}
		for range 2 { // the second write is a replay
			if err := s.WriteEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
		if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".events FINAL"); n != 300 {
			t.Fatalf("events FINAL through the Distributed table = %d, want 300", n)
		}
		owner := map[string]int{}
		for i, shard := range c.Shards {
			conn := shardConn(t, shard.Addr)
			rows, err := conn.Query(ctx, "SELECT identity_id, count() FROM "+s.Database()+".events_local FINAL GROUP BY identity_id")
			if err != nil {
				t.Fatal(err)
			}
			var ids int
			for rows.Next() {
				var id string
				var n uint64
				if err := rows.Scan(&id, &n); err != nil {
					t.Fatal(err)
				}
				if prev, ok := owner[id]; ok {
					t.Errorf("identity %s on shards %d and %d", id, prev, i)
				}
				owner[id] = i
				ids++
			}
			rows.Close()
			if ids == 0 {
				t.Errorf("shard %d holds no identity", i)
			}
		}
		if len(owner) != 60 {
			t.Errorf("%d identities on the shards, want 60", len(owner))
		}
		dropped, err := s.DropBefore(ctx, "events", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || len(dropped) != 1 || dropped[0] != "202610" {
			t.Fatalf("DropBefore = %q, %v; want [202610]", dropped, err)
		}
		for i, shard := range c.Shards {
			var n uint64
			if err := shardConn(t, shard.Addr).QueryRow(ctx, "SELECT count() FROM "+s.Database()+".events_local WHERE toYYYYMM(time) = 202610").Scan(&n); err != nil || n != 0 {
				t.Errorf("shard %d keeps %d October events, %v", i, n, err)
			}
		}
		if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".events FINAL"); n != 150 {
			t.Errorf("events FINAL after retention = %d, want 150", n)
		}
	})

	t.Run("the response audit keeps the newest version of each action", func(t *testing.T) {
		s := c.Open(t)
		ctx := context.Background()
		at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
		var recs []response.Record
		for i := range 40 { // 20 actions on 20 identities, each written queued then succeeded
			st := response.StatusQueued
			if i >= 20 {
				st = response.StatusSucceeded
			}
			recs = append(recs, response.Record{
				ID: fmt.Sprintf("act-%d", i%20), IdentityID: fmt.Sprintf("aws:role/1/r%d", i%20),
				Time: at, UpdatedAt: at.Add(time.Duration(i) * time.Second), Version: uint64(i + 1), Status: st,
			})
		}
		for _, batch := range [][]response.Record{recs[:20], recs[20:], recs[20:]} { // the last a replay
			if err := s.WriteAudit(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.LoadAudit(ctx, response.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 20 {
			t.Fatalf("LoadAudit gave %d records, want 20", len(got))
		}
		for _, r := range got {
			if r.Status != response.StatusSucceeded {
				t.Errorf("%s: status %s, want the newest, succeeded", r.ID, r.Status)
			}
		}
		if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".response_audit FINAL"); n != 20 {
			t.Errorf("response_audit FINAL = %d rows, want 20", n)
		}
	})

	t.Run("every server knows the applied migrations", func(t *testing.T) {
		s := c.Open(t)
		cfg := c.Config(t)
		cfg.Addr, cfg.Database = c.Shards[1].Addr, s.Database()
		other, err := chstore.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		// schema_migrations replicates asynchronously.
		var applied []int
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if applied, err = other.Migrate(context.Background()); err != nil || len(applied) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || len(applied) != 0 {
			t.Fatalf("migrate through the second server applied %v, %v; want nothing", applied, err)
		}
	})
}

func shardConn(t *testing.T, addr string) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
