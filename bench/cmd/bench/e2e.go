package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/bench/gen"
)

// topics maps each generated format to its input topic, as the demo does.
var topics = map[string]string{
	gen.FormatEnvoy:      "nhi.mesh.envoy",
	gen.FormatKong:       "nhi.gateway.kong",
	gen.FormatCloudTrail: "nhi.cloud.cloudtrail",
	gen.FormatVault:      "nhi.issuance.vault",
}

const (
	metricRecords  = "nhi_ingest_records_total"
	metricEvents   = "nhi_ingest_events_total"
	metricLatency  = "nhi_detect_latency_seconds"
	metricRSS      = "process_resident_memory_bytes"
	metricCacheB   = "nhi_baseline_cache_bytes"
	metricCacheIDs = "nhi_baseline_cache_identities"
)

type e2eOptions struct {
	bin, chAddr, database, dir string
	seed                       int64
	backlog                    int
	liveRate                   int
	liveFor                    time.Duration
	timeout                    time.Duration
}

type e2eResult struct {
	backlog          int
	sustained        float64 // records per second while the backlog drained
	sustainedEvents  float64 // normalized events per second, same span
	live             int
	liveRate         float64 // achieved produce rate of the live phase
	findings         float64 // latency observations in the live phase
	p50, p99         float64 // seconds
	bytesPerIdentity float64
	identities       float64
	peakRSS          float64
}

// scrape is one reading of /metrics and when it was taken.
type scrape struct {
	at      time.Time
	samples []sample
}

func runEndToEnd(ctx context.Context, o e2eOptions, rulesFile string, logf func(string, ...any)) (e2eResult, error) {
	var res e2eResult
	inputs := make([]string, 0, len(topics))
	for _, t := range topics {
		inputs = append(inputs, t)
	}
	sort.Strings(inputs)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, inputs...),
		kfake.SeedTopics(1, "nhi.findings", "nhi.deadletter"))
	if err != nil {
		return res, fmt.Errorf("start in-process broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return res, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()

	// The backlog is produced before the service starts, so the service
	// reads as fast as it can: its rate is the sustained figure.
	logf("producing %d backlog records", o.backlog)
	n, err := produce(ctx, cl, gen.Config{Seed: o.seed, Start: benchStart, Duration: 60 * 24 * time.Hour, Attacks: true}, o.backlog, false)
	if err != nil {
		return res, err
	}
	res.backlog = n

	if err := dropDatabase(ctx, o.chAddr, o.database); err != nil {
		return res, err
	}
	listen, err := freeAddr()
	if err != nil {
		return res, err
	}
	cfgFile := filepath.Join(o.dir, "nhisentry.yaml")
	if err := os.WriteFile(cfgFile, []byte(configYAML(brokers, o.chAddr, o.database, listen, rulesFile)), 0o600); err != nil {
		return res, fmt.Errorf("write config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(o.dir, "nhisentry.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	cmd := exec.Command(o.bin, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", o.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	m := &monitor{url: "http://" + listen + "/metrics", exited: exited, log: logFile.Name()}
	logf("nhisentry started (log %s); waiting for %d records", logFile.Name(), n)
	deadline := time.Now().Add(o.timeout)
	first, err := m.waitFor(ctx, deadline, func(s scrape) bool { return sum(s.samples, metricRecords) > 0 })
	if err != nil {
		return res, err
	}
	last, err := m.waitFor(ctx, deadline, func(s scrape) bool { return sum(s.samples, metricRecords) >= float64(n) })
	if err != nil {
		return res, err
	}
	// The first reading already counts what was read before it, so the
	// rates are taken between the two readings.
	if d := last.at.Sub(first.at).Seconds(); d > 0 {
		res.sustained = (sum(last.samples, metricRecords) - sum(first.samples, metricRecords)) / d
		res.sustainedEvents = (sum(last.samples, metricEvents) - sum(first.samples, metricEvents)) / d
	}

	// The live phase: records stamped with the current time, produced at a
	// fixed rate after the backlog drained, so event time to finding
	// delivery is the pipeline's latency. Another seed makes another
	// population, whose first activity the detectors report; the attack
	// scenarios are left out because their bursts would swamp the rate.
	before := buckets(last.samples, metricLatency)
	logf("live phase: %d records/s for %s", o.liveRate, o.liveFor)
	// Measured on the generator: each unit of EventsPerIdentityHour makes
	// about 2 records per identity-hour (rates are log-normal, mean 1.65×
	// the median, and a Vault request writes two records).
	perIdentityHour := float64(o.liveRate) * 3600 / (gen.DefaultWorkloads + gen.DefaultRoles + gen.DefaultAPIKeys + gen.DefaultVaultClients) / 2
	liveStart := time.Now().Add(2 * time.Second).Truncate(time.Second)
	live, err := produce(ctx, cl, gen.Config{Seed: o.seed + 1, Start: liveStart, Duration: o.liveFor,
		EventsPerIdentityHour: perIdentityHour}, math.MaxInt, true)
	if err != nil {
		return res, err
	}
	res.live = live
	res.liveRate = float64(live) / time.Since(liveStart).Seconds()
	end, err := m.waitFor(ctx, time.Now().Add(o.timeout), func(s scrape) bool {
		return sum(s.samples, metricRecords) >= float64(n+live)
	})
	if err != nil {
		return res, err
	}
	d := delta(buckets(end.samples, metricLatency), before)
	res.findings = d[math.Inf(1)]
	res.p50, res.p99 = quantile(0.50, d), quantile(0.99, d)
	res.identities = sum(end.samples, metricCacheIDs)
	if res.identities > 0 {
		res.bytesPerIdentity = sum(end.samples, metricCacheB) / res.identities
	}
	res.peakRSS = m.peakRSS
	return res, nil
}

// pollEvery bounds the error of the sustained rate's time span.
const pollEvery = 250 * time.Millisecond

// monitor polls the service's /metrics every pollEvery and remembers the
// highest resident memory it saw.
type monitor struct {
	url     string
	exited  <-chan error
	log     string
	peakRSS float64
}

func (m *monitor) waitFor(ctx context.Context, deadline time.Time, done func(scrape) bool) (scrape, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		s, err := m.read(ctx)
		if err == nil {
			m.peakRSS = max(m.peakRSS, sum(s.samples, metricRSS))
			if done(s) {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("timed out waiting for nhisentry (last error %v; see %s)", err, m.log)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case err := <-m.exited:
			return s, fmt.Errorf("nhisentry exited early: %v (see %s)", err, m.log)
		case <-tick.C:
		}
	}
}

func (m *monitor) read(ctx context.Context) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return scrape{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	s := scrape{at: time.Now()}
	s.samples, err = parseMetrics(resp.Body)
	return s, err
}

// produce generates records from cfg, at most limit of them, and produces
// them as fast as the broker takes them or, with paced, each at its event
// time.
func produce(ctx context.Context, cl *kgo.Client, cfg gen.Config, limit int, paced bool) (int, error) {
	var n int
	var firstErr error
	_, err := gen.Generate(cfg, func(r gen.Record) error {
		if firstErr != nil {
			return firstErr
		}
		if n == limit {
			return errEnough
		}
		if paced {
			if wait := time.Until(r.Time); wait > time.Millisecond {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
		}
		cl.Produce(ctx, &kgo.Record{Topic: topics[r.Format], Key: r.Key, Value: r.Value, Timestamp: r.Time},
			func(_ *kgo.Record, err error) {
				if err != nil && firstErr == nil {
					firstErr = err
				}
			})
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return n, fmt.Errorf("generate records: %w", err)
	}
	if err := cl.Flush(ctx); err != nil {
		return n, fmt.Errorf("produce records: %w", err)
	}
	if firstErr != nil {
		return n, fmt.Errorf("produce records: %w", firstErr)
	}
	return n, nil
}

func dropDatabase(ctx context.Context, addr, db string) error {
	s, err := chstore.Open(ctx, chstore.Config{Addr: addr, Database: db, Username: "default", DialTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("ClickHouse at %s (start one with `make clickhouse`): %w", addr, err)
	}
	defer s.Close()
	if err := s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// configYAML is the service's configuration for the run: the defaults,
// with the broker, database, listen address and starter rule pack of the
// harness.
func configYAML(brokers []string, chAddr, db, listen, rulesFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kafka:\n  brokers: [%s]\n  group_id: nhisentry-bench\n  batch_size: 5000\n  inputs:\n", strings.Join(brokers, ", "))
	formats := make([]string, 0, len(topics))
	for f := range topics {
		formats = append(formats, f)
	}
	sort.Strings(formats)
	for _, f := range formats {
		fmt.Fprintf(&b, "    - {topic: %s, format: %s}\n", topics[f], f)
	}
	fmt.Fprintf(&b, "clickhouse:\n  addr: %q\n  database: %s\n", chAddr, db)
	fmt.Fprintf(&b, "detect:\n  rules: [%q]\nhttp:\n  listen: %q\nlog:\n  level: warn\n", rulesFile, listen)
	return b.String()
}
