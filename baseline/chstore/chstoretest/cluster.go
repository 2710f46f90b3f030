//go:build unix

package chstoretest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/peer/chpeer"
)

// ClusterName is the cluster StartCluster defines in remote_servers.
const ClusterName = "nhitest"

// Cluster is a private ClickHouse cluster of two shards with one replica
// each, two clickhouse-server 18.16 processes and one ZooKeeper on
// loopback: the Replicated tables and ON CLUSTER DDL that
// `nhisentry migrate --cluster` creates run there for real.
type Cluster struct {
	Shards []*chpeer.Server
}

// StartCluster starts the cluster; the test's cleanup stops it.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	zk := chpeer.StartZooKeeper(t)
	zkHost, zkPort, _ := strings.Cut(zk, ":")
	ports, err := peer.FreePorts(2)
	if err != nil {
		t.Fatalf("cluster ports: %v", err)
	}
	var shards strings.Builder
	for _, p := range ports {
		// internal_replication: the Replicated local tables copy a
		// shard's rows to its replicas; Distributed writes one of them.
		fmt.Fprintf(&shards, "<shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", p)
	}
	c := &Cluster{}
	for i, p := range ports {
		c.Shards = append(c.Shards, chpeer.Start(t, chpeer.Options{TCPPort: p, Config: func(*chpeer.Server) string {
			return fmt.Sprintf(`<zookeeper><node><host>%s</host><port>%s</port></node></zookeeper>
<remote_servers><%[3]s>%[4]s</%[3]s></remote_servers>
<macros><shard>%02[5]d</shard><replica>r1</replica></macros>
<distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>`, zkHost, zkPort, ClusterName, shards.String(), i+1)
		}}))
	}
	for _, s := range c.Shards {
		waitForZooKeeper(t, s.Addr)
	}
	return c
}

// waitForZooKeeper waits until the server at addr has a ZooKeeper session.
// A server that lost the race with ZooKeeper's start retries in the
// background, and 18.16 crashes on ON CLUSTER DDL run before it succeeds.
func waitForZooKeeper(t testing.TB, addr string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatalf("clickhouse %s: %v", addr, err)
	}
	defer conn.Close()
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n uint64
		if last = conn.QueryRow(context.Background(), "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&n); last == nil {
			return
		}
	}
	t.Fatalf("clickhouse %s has no ZooKeeper session: %v", addr, last)
}

// Config is Config(t) on the cluster's first server, with Cluster set.
func (c *Cluster) Config(t testing.TB) chstore.Config {
	cfg := Config(t)
	cfg.Addr, cfg.Cluster = c.Shards[0].Addr, ClusterName
	return cfg
}

// Open is Open on the cluster: a new database migrated onto every server
// with `migrate --cluster`, dropped on every server when the test ends.
func (c *Cluster) Open(t testing.TB) *chstore.Store {
	t.Helper()
	cfg := c.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s, err := chstore.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open the cluster's first server: %v", err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate on cluster %s: %v", ClusterName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database+" ON CLUSTER "+ClusterName); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		s.Close()
	})
	return s
}
