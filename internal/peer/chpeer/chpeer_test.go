//go:build unix

package chpeer_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/nhisentry/nhisentry/internal/peer/chpeer"
)

// The server answers, keeps its data over a restart, and its extra
// configuration is applied.
func TestStartStopRestart(t *testing.T) {
	s := chpeer.Start(t, chpeer.Options{Config: func(*chpeer.Server) string {
		return "<macros><replica>r1</replica></macros>"
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"CREATE TABLE default.kept (x UInt8) ENGINE = MergeTree ORDER BY x",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var replica string
	if err := conn.QueryRow(ctx, "SELECT substitution FROM system.macros WHERE macro = 'replica'").Scan(&replica); err != nil || replica != "r1" {
		t.Fatalf("macro replica = %q, %v; want r1", replica, err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'default' AND name = 'kept'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: %d tables named kept, %v; want 1", n, err)
	}
}
