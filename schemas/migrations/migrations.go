// Package migrations owns the ClickHouse schema: numbered SQL files embedded
// in the binary, applied in order and recorded in schema_migrations so that
// running them again changes nothing. The SQL is written for Debian's
// ClickHouse 18.16 and checked on current ClickHouse too.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed sql/*.sql
var files embed.FS

// Migration is one numbered schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

var (
	fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)
	dbName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// Statements end with ';' at the end of a line, so a ';' inside a string
	// or comment never splits one.
	stmtEnd = regexp.MustCompile(`;\s*\n`)
)

// Target is where the migrations go: database DB on one server or, with
// Cluster set, on every server of that cluster (ForCluster).
type Target struct {
	DB      string
	Cluster string
}

// migrations are the statements for t, in version order.
func (t Target) migrations() ([]Migration, error) {
	all, err := All(t.DB)
	if err != nil || t.Cluster == "" {
		return all, err
	}
	return ForCluster(all, t.Cluster)
}

// bootstrap creates what the migrations themselves need. On a cluster,
// schema_migrations is one replicated table with a replica on every server
// of every shard (its ZooKeeper path has no {shard}): Apply reads it on the
// server it is connected to, and whichever server a later migrate connects
// to knows what the cluster has applied. It is not Distributed, because a
// version row belongs to the whole cluster, not to one shard.
func (t Target) bootstrap() []string {
	const columns = " (version UInt32, name String, applied_at DateTime) "
	table := t.DB + ".schema_migrations"
	if t.Cluster == "" {
		return []string{
			"CREATE DATABASE IF NOT EXISTS " + t.DB,
			"CREATE TABLE IF NOT EXISTS " + table + columns + "ENGINE = MergeTree ORDER BY version",
		}
	}
	on := " ON CLUSTER " + t.Cluster
	// {shard} in the replica name keeps it unique across the cluster when
	// the {replica} macros repeat from shard to shard.
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + t.DB + on,
		"CREATE TABLE IF NOT EXISTS " + table + on + columns +
			"ENGINE = " + replicated("MergeTree", "", "/clickhouse/tables/all/"+t.DB+"/schema_migrations", "'{shard}-{replica}'") + " ORDER BY version",
	}
}

// All returns the migrations for database db in version order.
func All(db string) ([]Migration, error) {
	if !dbName.MatchString(db) {
		return nil, fmt.Errorf("database name %q: want letters, digits and underscores", db)
	}
	entries, err := fs.ReadDir(files, "sql")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		body, err := files.ReadFile("sql/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		mig := Migration{Version: v, Name: m[2]}
		for _, s := range stmtEnd.Split(strings.ReplaceAll(string(body), "{{db}}", db)+"\n", -1) {
			if s = stripComments(s); s != "" {
				mig.Statements = append(mig.Statements, s)
			}
		}
		out = append(out, mig)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d", out[i].Version)
		}
	}
	return out, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return strings.TrimSpace(b.String())
}

// PrintSQL writes every statement Apply would run on an empty server (or
// cluster), each ending in ";", so the output can be fed to
// clickhouse-client --multiquery.
func PrintSQL(w io.Writer, t Target) error {
	all, err := t.migrations()
	if err != nil {
		return err
	}
	for _, s := range t.bootstrap() {
		if _, err := fmt.Fprintf(w, "%s;\n\n", s); err != nil {
			return err
		}
	}
	for _, m := range all {
		if _, err := fmt.Fprintf(w, "-- %04d_%s\n", m.Version, m.Name); err != nil {
			return err
		}
		for _, s := range m.Statements {
			if _, err := fmt.Fprintf(w, "%s;\n\n", s); err != nil {
				return err
			}
		}
	}
	return nil
}

// Apply brings t up to the newest migration and returns the versions it
// applied. Migrations already recorded are skipped, so Apply is safe to run
// at every start. On a cluster conn may reach any of its servers: every
// statement runs ON CLUSTER.
func Apply(ctx context.Context, conn driver.Conn, t Target, log *slog.Logger) ([]int, error) {
	all, err := t.migrations()
	if err != nil {
		return nil, err
	}
	db := t.DB
	for _, s := range t.bootstrap() {
		if err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("migrate %s: bootstrap: %w", db, err)
		}
	}
	done, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		byOther, err := apply(ctx, conn, db, m)
		switch {
		case err != nil:
			return applied, err
		case byOther:
			log.Info("migration applied by another instance", "database", db, "version", m.Version, "name", m.Name)
		default:
			log.Info("applied migration", "database", db, "version", m.Version, "name", m.Name)
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// apply runs m's statements and records it. Instances starting together
// race through the same migration, and the loser's ALTER fails on a column
// the winner has just added: after a failure apply waits for another
// instance to record m, and reports byOther when one did.
func apply(ctx context.Context, conn driver.Conn, db string, m Migration) (byOther bool, err error) {
	for i, s := range m.Statements {
		if err := conn.Exec(ctx, s); err != nil {
			if waitApplied(ctx, conn, db, m.Version, concurrentWait) {
				return true, nil
			}
			return false, fmt.Errorf("migrate %s: %04d_%s statement %d: %w", db, m.Version, m.Name, i+1, err)
		}
	}
	if err := record(ctx, conn, db, m); err != nil {
		return false, fmt.Errorf("migrate %s: record %04d_%s: %w", db, m.Version, m.Name, err)
	}
	return false, nil
}

// concurrentWait bounds how long Apply waits for another instance to finish
// a migration whose statement failed here.
const concurrentWait = 30 * time.Second

// waitApplied reports whether version is recorded as applied within wait.
func waitApplied(ctx context.Context, conn driver.Conn, db string, version int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		if done, err := appliedVersions(ctx, conn, db); err == nil && done[version] {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// appliedVersions reads the versions recorded in schema_migrations.
func appliedVersions(ctx context.Context, conn driver.Conn, db string) (map[int]bool, error) {
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate %s: read applied versions: %w", db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate %s: scan version: %w", db, err)
		}
		done[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate %s: read applied versions: %w", db, err)
	}
	return done, nil
}

// record notes m as applied. It goes through a batch because ClickHouse 18.16
// does not answer an INSERT … VALUES sent as a plain query over the native
// protocol.
func record(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, applied_at)")
	if err != nil {
		return err
	}
	if err := batch.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
		batch.Abort()
		return err
	}
	return batch.Send()
}
