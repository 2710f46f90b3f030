package migrations_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/schemas/migrations"
)

func TestForCluster(t *testing.T) {
	const events = "CREATE TABLE IF NOT EXISTS d.events\n(\n    id String,\n    identity_id String,\n    v UInt64\n)\nENGINE = ReplacingMergeTree(v)\nPARTITION BY toYYYYMM(t)\nORDER BY (identity_id, id)"
	const marks = "CREATE TABLE IF NOT EXISTS d.marks\n(\n    name String,\n    at DateTime\n)\nENGINE = MergeTree\nORDER BY name"
	tests := []struct {
		name    string
		cluster string
		stmts   []string
		want    []string
		wantErr string
	}{
		{
			name: "database", cluster: "c",
			stmts: []string{"CREATE DATABASE IF NOT EXISTS d"},
			want:  []string{"CREATE DATABASE IF NOT EXISTS d ON CLUSTER c"},
		},
		{
			name: "table with identities: replicated local table, distributed by identity", cluster: "c",
			stmts: []string{events},
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.events_local ON CLUSTER c\n(\n    id String,\n    identity_id String,\n    v UInt64\n)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/events/0001', '{replica}', v)\nPARTITION BY toYYYYMM(t)\nORDER BY (identity_id, id)",
				"CREATE TABLE IF NOT EXISTS d.events ON CLUSTER c AS d.events_local\nENGINE = Distributed(c, d, events_local, cityHash64(identity_id))",
			},
		},
		{
			name: "table without identities: distributed by the first sorting key column", cluster: "c",
			stmts: []string{marks},
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.marks_local ON CLUSTER c\n(\n    name String,\n    at DateTime\n)\n" +
					"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/marks/0001', '{replica}')\nORDER BY name",
				"CREATE TABLE IF NOT EXISTS d.marks ON CLUSTER c AS d.marks_local\nENGINE = Distributed(c, d, marks_local, cityHash64(name))",
			},
		},
		{
			name: "column change: local tables altered, distributed table created again", cluster: "c",
			stmts: []string{events, "ALTER TABLE d.events ADD COLUMN n UInt32 DEFAULT 1"},
			want: []string{
				"ALTER TABLE d.events_local ON CLUSTER c ADD COLUMN n UInt32 DEFAULT 1",
				"DROP TABLE IF EXISTS d.events ON CLUSTER c",
				"CREATE TABLE IF NOT EXISTS d.events ON CLUSTER c AS d.events_local\nENGINE = Distributed(c, d, events_local, cityHash64(identity_id))",
			},
		},
		{
			name: "other ALTER: local tables only", cluster: "c",
			stmts: []string{events, "ALTER TABLE d.events DROP PARTITION 202601"},
			want:  []string{"ALTER TABLE d.events_local ON CLUSTER c DROP PARTITION 202601"},
		},
		{
			name: "drop: distributed table first", cluster: "c",
			stmts: []string{"DROP TABLE IF EXISTS d.events"},
			want:  []string{"DROP TABLE IF EXISTS d.events ON CLUSTER c", "DROP TABLE IF EXISTS d.events_local ON CLUSTER c"},
		},
		{
			name: "column change of a table no migration creates", cluster: "c",
			stmts:   []string{"ALTER TABLE d.other ADD COLUMN n UInt32"},
			wantErr: "which no earlier migration creates",
		},
		{
			name: "column change of a dropped table", cluster: "c",
			stmts:   []string{events, "DROP TABLE IF EXISTS d.events", "ALTER TABLE d.events ADD COLUMN n UInt32"},
			wantErr: "which no earlier migration creates",
		},
		{
			name: "a statement with no cluster form", cluster: "c",
			stmts:   []string{"INSERT INTO d.events (id) SELECT 'x'"},
			wantErr: `no cluster form for "INSERT INTO d.events (id) SELECT 'x'"`,
		},
		{
			name: "an engine with no replicated form", cluster: "c",
			stmts:   []string{"CREATE TABLE IF NOT EXISTS d.m (x UInt8) ENGINE = Memory"},
			wantErr: "no cluster form",
		},
		{
			name: "one-line column list", cluster: "c",
			stmts: []string{"CREATE TABLE IF NOT EXISTS d.m (id String, identity_id String) ENGINE = MergeTree ORDER BY id"},
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.m_local ON CLUSTER c\n(id String, identity_id String)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/m/0001', '{replica}')\nORDER BY id",
				"CREATE TABLE IF NOT EXISTS d.m ON CLUSTER c AS d.m_local\nENGINE = Distributed(c, d, m_local, cityHash64(identity_id))",
			},
		},
		{
			name: "an engine already replicated", cluster: "c",
			stmts:   []string{"CREATE TABLE IF NOT EXISTS d.m (x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY x"},
			wantErr: "already replicated",
		},
		{
			name: "no key to shard by", cluster: "c",
			stmts:   []string{"CREATE TABLE IF NOT EXISTS d.m (x UInt8) ENGINE = MergeTree PARTITION BY x ORDER BY tuple()"},
			wantErr: "no identity_id column and no ORDER BY",
		},
		{
			name: "cluster name", cluster: "c; DROP",
			wantErr: "want letters, digits and underscores",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := migrations.ForCluster([]migrations.Migration{{Version: 1, Name: "x", Statements: tt.stmts}}, tt.cluster)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The statements of the earlier, setting-up statements are not
			// part of what the case checks.
			stmts := got[0].Statements
			if !slices.Equal(stmts[len(stmts)-len(tt.want):], tt.want) {
				t.Errorf("got\n%s\nwant (at the end)\n%s", strings.Join(stmts, "\n;\n"), strings.Join(tt.want, "\n;\n"))
			}
		})
	}
}
