// Package chstoretest gives integration tests a real ClickHouse: a fresh,
// migrated database per test on the server named by NHI_CLICKHOUSE_ADDR
// (default 127.0.0.1:19000, the one deploy/local/clickhouse.sh starts),
// dropped when the test ends. Without a server the test is skipped on a
// laptop and fails under CI=true, so nothing passes by skipping.
package chstoretest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
	"github.com/nhisentry/nhisentry/internal/secure"
)

// DefaultAddr is where deploy/local/clickhouse.sh listens.
const DefaultAddr = "127.0.0.1:19000"

var seq atomic.Int64

// Config returns the address of the test server and a database name unique
// to this test.
func Config(t testing.TB) chstore.Config {
	addr := os.Getenv("NHI_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	db := fmt.Sprintf("nhitest_%s_%d_%d", name, os.Getpid(), seq.Add(1))
	return chstore.Config{Addr: addr, Database: db, DialTimeout: 3 * time.Second}
}

// Open connects to the test server, applies the migrations to a new database
// and drops it when the test ends.
func Open(t testing.TB) *chstore.Store {
	t.Helper()
	cfg := Config(t)
	// Cancelled only when the test ends: clickhouse-go's batch watchdog can
	// still see a cancellation that comes right after a batch was sent, and
	// then closes that (pooled) connection under the next query.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s, err := chstore.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		Unavailable(t, err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		s.Close()
	})
	return s
}

// Unavailable skips the test, or fails it under CI=true.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	peertest.Unavailable(t, "ClickHouse (deploy/local/clickhouse.sh start)", err)
}

// Count runs a count query and returns the number.
func Count(t testing.TB, s *chstore.Store, query string) uint64 {
	t.Helper()
	var n uint64
	if err := s.Conn().QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// DefaultTLSAddr is where deploy/local/clickhouse.sh serves the native
// protocol over TLS.
const DefaultTLSAddr = "127.0.0.1:19440"

// TLSConfig is Config over TLS: the server named by NHI_CLICKHOUSE_TLS_ADDR
// (default DefaultTLSAddr), verified with the CA file NHI_CLICKHOUSE_TLS_CA
// (default the certificate deploy/local/clickhouse.sh made in the checkout).
func TLSConfig(t testing.TB) chstore.Config {
	t.Helper()
	cfg := Config(t)
	cfg.Addr = cmp.Or(os.Getenv("NHI_CLICKHOUSE_TLS_ADDR"), DefaultTLSAddr)
	ca := os.Getenv("NHI_CLICKHOUSE_TLS_CA")
	if ca == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		ca = filepath.Join(root, ".local", "clickhouse", "tls", "cert.pem")
	}
	if _, err := os.Stat(ca); err != nil {
		Unavailable(t, fmt.Errorf("the ClickHouse TLS certificate: %w", err))
	}
	cfg.TLS = secure.TLS{Enabled: true, CAFile: ca}
	return cfg
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
