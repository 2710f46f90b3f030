package chstore_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
)

// TestTLS connects over the server's TLS port, verifying its certificate,
// migrates and round-trips a query; a client that trusts another CA is
// refused.
func TestTLS(t *testing.T) {
	cfg := chstoretest.TLSConfig(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := chstore.Open(ctx, cfg, log)
	if err != nil {
		chstoretest.Unavailable(t, err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate over TLS: %v", err)
	}
	defer s.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
	var one uint8
	if err := s.Conn().QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query over TLS: %v %d", err, one)
	}

	other := cfg
	other.TLS = secure.TLS{Enabled: true, CAFile: securetest.SelfSigned(t).CertFile}
	if _, err := chstore.Open(ctx, other, log); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server certificate from an untrusted CA: got %v", err)
	}
}
