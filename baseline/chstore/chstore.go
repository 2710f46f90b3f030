// Package chstore owns nhisentry's ClickHouse storage: the connection, the
// batched column-wise writes of normalized events and findings, and the
// queries that rebuild baselines from stored events after a start or a
// rebalance. It speaks the native protocol through clickhouse-go/v2, and every
// INSERT names its columns, which ClickHouse 18.16 requires.
package chstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/schemas/migrations"
)

// Config says how to reach ClickHouse.
type Config struct {
	Addr     string `yaml:"addr"`     // host:port of the native protocol
	Database string `yaml:"database"` // created by migrate
	Username string `yaml:"username"`
	// Password is read from the environment or a file, never from the
	// configuration file; unset means none.
	Password secure.Secret `yaml:"password"`
	TLS      secure.TLS    `yaml:"tls"`
	// DialTimeout bounds connecting; queries are bounded by their context.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Cluster names the ClickHouse cluster (remote_servers) the schema was
	// migrated onto with `nhisentry migrate --cluster`; empty for a single
	// server. The store then reads and writes the Distributed tables and
	// runs partition operations on the shard-local ones (docs/cluster.md).
	Cluster string `yaml:"cluster"`
}

// Store is a connection to one ClickHouse database.
type Store struct {
	conn    driver.Conn
	db      string
	cluster string
	log     *slog.Logger
}

// Open connects and checks the server answers.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	var password string
	if !cfg.Password.IsZero() {
		var err error
		if password, err = cfg.Password.Value(); err != nil {
			return nil, fmt.Errorf("clickhouse password: %w", err)
		}
	}
	tlsConf, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	opts := &clickhouse.Options{
		Addr: []string{cfg.Addr},
		Auth: clickhouse.Auth{Database: "default", Username: cfg.Username, Password: password},
		TLS:  tlsConf,
		// LZ4 costs less client CPU per row than no compression once batches
		// are large (research/performance.md §4).
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:  cfg.DialTimeout,
		MaxOpenConns: 4,
	}
	if cfg.Cluster != "" {
		opts.Settings = clickhouse.Settings{
			// An INSERT into a Distributed table returns only once the
			// shards hold the rows, not when they are queued on the server
			// we talk to: offsets are committed after a write returns, and
			// the rollup reads the events it was just given.
			"insert_distributed_sync": 1,
			// Replicated tables drop a block identical to a recent one.
			// Replays collapse by ReplacingMergeTree anyway, and the drop
			// would lose a write that must win by order, as on one server:
			// SetMark back to an earlier value within the same second of
			// updated_at.
			"insert_deduplicate": 0,
		}
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: ping: %w", cfg.Addr, err)
	}
	return &Store{conn: conn, db: cfg.Database, cluster: cfg.Cluster, log: log}, nil
}

// Migrate applies the schema migrations to the store's database.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	return migrations.Apply(ctx, s.conn, migrations.Target{DB: s.db, Cluster: s.cluster}, s.log)
}

// Conn exposes the connection for queries outside this package's scope
// (tests, the CLI's read commands).
func (s *Store) Conn() driver.Conn { return s.conn }

// Database is the database the store writes to.
func (s *Store) Database() string { return s.db }

// Name identifies the store as a findings sink.
func (s *Store) Name() string { return "clickhouse" }

// Close closes the connection.
func (s *Store) Close() error { return s.conn.Close() }

// query runs q and calls row for every result row.
func (s *Store) query(ctx context.Context, what, q string, row func(scan func(...any) error) error) error {
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return fmt.Errorf("load %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}
