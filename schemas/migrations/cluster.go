package migrations

import (
	"fmt"
	"regexp"
	"strings"
)

// LocalSuffix names a table's shard-local part on a cluster: events_local
// holds one shard's rows of events, and events is the Distributed table
// over every shard's events_local.
const LocalSuffix = "_local"

// The statement forms the migration files use. A file using another form
// fails ForCluster, so a new kind of statement cannot reach a cluster
// untranslated.
var (
	createDatabase = regexp.MustCompile(`^CREATE DATABASE IF NOT EXISTS (\w+)$`)
	createTable    = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?\s*(.*)$`)
	alterTable     = regexp.MustCompile(`(?s)^ALTER TABLE (\w+)\.(\w+)\s+(.*)$`)
	dropTable      = regexp.MustCompile(`^DROP TABLE IF EXISTS (\w+)\.(\w+)$`)
	// Column changes concern the Distributed table's column list too;
	// every other ALTER (partitions, TTL, settings) the stored data only.
	columnAction = regexp.MustCompile(`^(ADD|DROP|MODIFY|COMMENT|RENAME) COLUMN\b`)
	identityCol  = regexp.MustCompile(`[(,]\s*identity_id\s`)
	// A plain column first in the sorting key, not an expression.
	firstKey = regexp.MustCompile(`ORDER BY \(?\s*(\w+)\s*(?:[,)\n]|$)`)
)

// ForCluster rewrites migrations written for one server into the same
// schema on a cluster: every statement runs ON CLUSTER; a table becomes a
// shard-local table <name>_local with the Replicated variant of its engine
// (same sorting key, partitioning and version column) and, under its own
// name, a Distributed table over the local ones that routes each row to a
// shard by a hash of its sharding key (shardingKey).
func ForCluster(all []Migration, cluster string) ([]Migration, error) {
	if !dbName.MatchString(cluster) {
		return nil, fmt.Errorf("cluster name %q: want letters, digits and underscores", cluster)
	}
	c := clusterSchema{name: cluster, keys: map[string]string{}}
	out := make([]Migration, len(all))
	for i, m := range all {
		out[i] = Migration{Version: m.Version, Name: m.Name}
		for j, s := range m.Statements {
			stmts, err := c.statement(s, m.Version)
			if err != nil {
				return nil, fmt.Errorf("migration %04d_%s statement %d on cluster %s: %w", m.Version, m.Name, j+1, cluster, err)
			}
			out[i].Statements = append(out[i].Statements, stmts...)
		}
	}
	return out, nil
}

// zooKeeperPath is where a shard's replicas of a table meet in ZooKeeper.
// It carries the version of the migration that creates the table, so a
// table dropped and created again (0007's response_audit) never meets its
// predecessor's metadata, which a drop can leave behind for a while
// (current ClickHouse removes dropped tables of an Atomic database late).
func zooKeeperPath(db, table string, version int) string {
	return fmt.Sprintf("/clickhouse/tables/{shard}/%s/%s/%04d", db, table, version)
}

// clusterSchema rewrites statements in migration order; it remembers each
// table's sharding key for the ALTERs that recreate its Distributed table.
type clusterSchema struct {
	name string
	keys map[string]string // db.table → sharding key
}

// distributed creates the Distributed table over db.table's local tables,
// with their columns as they are at this point of the migrations.
func (c clusterSchema) distributed(db, table string) string {
	local := db + "." + table + LocalSuffix
	return "CREATE TABLE IF NOT EXISTS " + db + "." + table + " ON CLUSTER " + c.name + " AS " + local + "\n" +
		"ENGINE = Distributed(" + c.name + ", " + db + ", " + table + LocalSuffix + ", " + c.keys[db+"."+table] + ")"
}

// statement is s, a statement of migration version, on the cluster.
func (c clusterSchema) statement(s string, version int) ([]string, error) {
	on := " ON CLUSTER " + c.name
	if m := createDatabase.FindStringSubmatch(s); m != nil {
		return []string{s + on}, nil
	}
	if m := createTable.FindStringSubmatch(s); m != nil {
		db, table, columns, engine, args, rest := m[1], m[2], m[3], m[4], m[5], m[6]
		if strings.HasPrefix(engine, "Replicated") {
			return nil, fmt.Errorf("table %s: engine %s is already replicated; migration files are written for one server", table, engine)
		}
		key, err := shardingKey(columns, rest)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", table, err)
		}
		c.keys[db+"."+table] = key
		return []string{
			"CREATE TABLE IF NOT EXISTS " + db + "." + table + LocalSuffix + on + "\n" + columns + "\n" +
				"ENGINE = " + replicated(engine, args, zooKeeperPath(db, table, version), "'{replica}'") + "\n" + rest,
			c.distributed(db, table),
		}, nil
	}
	if m := alterTable.FindStringSubmatch(s); m != nil {
		db, table, action := m[1], m[2], m[3]
		stmts := []string{"ALTER TABLE " + db + "." + table + LocalSuffix + on + " " + action}
		if columnAction.MatchString(action) {
			if _, ok := c.keys[db+"."+table]; !ok {
				return nil, fmt.Errorf("ALTER of table %s.%s, which no earlier migration creates", db, table)
			}
			// The Distributed table takes the new columns by being created
			// again: ClickHouse 18.16 refuses ALTER … ON CLUSTER on a
			// table that is not Replicated when the cluster's shards use
			// internal_replication. It holds no rows (the store inserts
			// synchronously), so nothing is lost.
			stmts = append(stmts, "DROP TABLE IF EXISTS "+db+"."+table+on, c.distributed(db, table))
		}
		return stmts, nil
	}
	if m := dropTable.FindStringSubmatch(s); m != nil {
		delete(c.keys, m[1]+"."+m[2])
		// The Distributed table first, so no insert is routed to a local
		// table that is already gone.
		return []string{s + on, "DROP TABLE IF EXISTS " + m[1] + "." + m[2] + LocalSuffix + on}, nil
	}
	first, _, _ := strings.Cut(s, "\n")
	return nil, fmt.Errorf("no cluster form for %q (known: CREATE DATABASE, CREATE TABLE … MergeTree, ALTER TABLE, DROP TABLE)", first)
}

// replicated is the Replicated variant of a MergeTree-family engine with
// its ZooKeeper path and replica name in front of the engine's own
// arguments (the version column of a ReplacingMergeTree).
func replicated(engine, args, path, replica string) string {
	all := "'" + path + "', " + replica
	if args = strings.TrimSpace(args); args != "" {
		all += ", " + args
	}
	return "Replicated" + engine + "(" + all + ")"
}

// shardingKey is the Distributed table's sharding expression for a table
// with the given column list and the clauses after its engine: a hash of
// identity_id where the table has one, so all rows of one identity sit on
// one shard — ReplacingMergeTree collapses versions and FINAL and argMax
// reads pick the newest only within a shard, and every sorting key that
// holds an identity's versions (events, rollups, baselines) or a row
// written for one identity (findings, audit records by id) stays on that
// shard. A table without identities (rollup_marks) is sharded by the first
// column of its sorting key, which puts each key's versions together.
func shardingKey(columns, clauses string) (string, error) {
	if identityCol.MatchString(columns) {
		return "cityHash64(identity_id)", nil
	}
	m := firstKey.FindStringSubmatch(clauses)
	if m == nil {
		return "", fmt.Errorf("no identity_id column and no ORDER BY to shard by")
	}
	return "cityHash64(" + m[1] + ")", nil
}
