// Package e2e runs `nhisentry run` end to end for the benchmark commands:
// an in-process Kafka-protocol broker (kfake) fed by the seeded generator,
// the built binary as a subprocess against it and a ClickHouse, and readings
// of the service's /metrics.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
)

// Topics maps each generated format to its input topic, as the demo does.
var Topics = map[string]string{
	gen.FormatEnvoy:      "nhi.mesh.envoy",
	gen.FormatKong:       "nhi.gateway.kong",
	gen.FormatCloudTrail: "nhi.cloud.cloudtrail",
	gen.FormatVault:      "nhi.issuance.vault",
}

// GroupID is the consumer group the service reads the input topics in.
const GroupID = "nhisentry-bench"

// The topics between the stages when the services scale out
// (ServiceOptions.Repartition).
const (
	RepartitionTopic = "nhi.events"
	LinksTopic       = "nhi.links"
)

// Metrics the harnesses read from /metrics.
const (
	MetricRecords    = "nhi_ingest_records_total"
	MetricEvents     = "nhi_ingest_events_total"
	MetricLatency    = "nhi_detect_latency_seconds"
	MetricRSS        = "process_resident_memory_bytes"
	MetricGoroutines = "go_goroutines"
	MetricHeapInuse  = "go_memstats_heap_inuse_bytes"
	MetricCacheBytes = "nhi_baseline_cache_bytes"
	MetricCacheIDs   = "nhi_baseline_cache_identities"
)

// clickHouseAddr is the default ClickHouse: $NHI_CLICKHOUSE_ADDR, or the
// project-local one `make clickhouse` starts.
func clickHouseAddr() string {
	if v := os.Getenv("NHI_CLICKHOUSE_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:19000"
}

// InputTopics lists the input topics in a fixed order.
func InputTopics() []string {
	out := make([]string, 0, len(Topics))
	for _, t := range Topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Broker is an in-process broker holding the input and repartition topics
// (4 partitions each), the findings, dead-letter and links topics, and a
// producer client for it.
type Broker struct {
	cluster *kfake.Cluster
	Client  *kgo.Client
}

// StartBroker starts the broker and its producer.
func StartBroker() (*Broker, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, append(InputTopics(), RepartitionTopic)...),
		kfake.SeedTopics(1, "nhi.findings", "nhi.deadletter", LinksTopic))
	if err != nil {
		return nil, fmt.Errorf("start in-process broker: %w", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Broker{cluster: cluster, Client: cl}, nil
}

// Addrs are the broker's listen addresses.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the producer, then the broker.
func (b *Broker) Close() {
	b.Client.Close()
	b.cluster.Close()
}

// Flags are the command-line flags for the service under test that the
// bench commands share.
type Flags struct {
	Bin        string // the nhisentry binary; empty builds one
	ClickHouse string // native address
	Database   string // dropped first, so every run starts empty
}

// Register adds --bin, --clickhouse and --database, the latter defaulting
// to database.
func (f *Flags) Register(fs *flag.FlagSet, database string) {
	fs.StringVar(&f.Bin, "bin", "", "nhisentry binary (default: go build one)")
	fs.StringVar(&f.ClickHouse, "clickhouse", clickHouseAddr(), "ClickHouse native address")
	fs.StringVar(&f.Database, "database", database, "ClickHouse database (dropped and recreated)")
}

// BuildIfUnset builds nhisentry into dir when --bin was not given; the
// compiler writes to stderr.
func (f *Flags) BuildIfUnset(ctx context.Context, dir string, stderr io.Writer, logf func(string, ...any)) error {
	if f.Bin != "" {
		return nil
	}
	logf("building nhisentry in %s", dir)
	bin := filepath.Join(dir, "nhisentry")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nhisentry/nhisentry/cmd/nhisentry")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build nhisentry: %w", err)
	}
	f.Bin = bin
	return nil
}

// WriteRulesFile writes the embedded starter pack where the rule engine and
// the service can load it.
func WriteRulesFile(dir string) (string, error) {
	file := filepath.Join(dir, "default-rules.yaml")
	if err := os.WriteFile(file, pack.Default, 0o600); err != nil {
		return "", fmt.Errorf("write rules: %w", err)
	}
	return file, nil
}

// ServiceOptions configures a StartService run.
type ServiceOptions struct {
	Flags              // Bin must be set
	Brokers   []string // the broker to read
	Dir       string   // for the configuration and the log
	RulesFile string
	// Instance numbers the services of one run: instance 0 drops the
	// database, the others share it, each with its own files.
	Instance int
	// Repartition scales out: the services detect in one group through
	// RepartitionTopic and share LinksTopic.
	Repartition bool
}

// Service is a running `nhisentry run` subprocess.
type Service struct {
	cmd     *exec.Cmd
	url     string
	log     string
	done    chan struct{} // closed when the process has exited; err is set then
	err     error
	PeakRSS float64 // the highest resident memory WaitFor saw
}

// StartService drops the database and starts nhisentry with the defaults
// plus the harness's broker, database, listen address and rules.
func StartService(ctx context.Context, o ServiceOptions) (*Service, error) {
	if o.Instance == 0 {
		if err := dropDatabase(ctx, o.ClickHouse, o.Database); err != nil {
			return nil, err
		}
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := "nhisentry"
	if o.Instance > 0 {
		name = fmt.Sprintf("nhisentry-%d", o.Instance)
	}
	cfgFile := filepath.Join(o.Dir, name+".yaml")
	if err := os.WriteFile(cfgFile, []byte(configYAML(o.Brokers, o.ClickHouse, o.Database, listen, o.RulesFile, o.Repartition)), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(o.Dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("service log: %w", err)
	}
	// The child holds its own descriptor; ours is not needed past Start.
	defer logFile.Close()
	cmd := exec.Command(o.Bin, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	s := &Service{cmd: cmd, url: "http://" + listen + "/metrics", log: logFile.Name(), done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// Log is the path of the service's log.
func (s *Service) Log() string { return s.log }

// Exited is closed when the process has exited.
func (s *Service) Exited() <-chan struct{} { return s.done }

// ExitErr says how the process ended; call it after Exited is closed.
// The log's last lines are included: the run's folder is removed on exit.
func (s *Service) ExitErr() error {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return fmt.Errorf("nhisentry exited early: %v; the end of %s:\n%s", s.err, s.log, strings.Join(lines[max(len(lines)-5, 0):], "\n"))
}

// Stop sends SIGTERM, so the service commits what it has read, and kills
// it if it has not exited a minute later.
func (s *Service) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Main runs a command's run function with a context cancelled by SIGINT or
// SIGTERM and exits 1, naming the command, when it fails.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Scrape is one reading of /metrics and when it was taken.
type Scrape struct {
	At      time.Time
	Samples []Sample
}

// pollEvery bounds the error of a rate's time span measured by WaitFor.
const pollEvery = 250 * time.Millisecond

// WaitFor reads /metrics every pollEvery until done accepts a reading, the
// deadline passes or the service exits.
func (s *Service) WaitFor(ctx context.Context, deadline time.Time, done func(Scrape) bool) (Scrape, error) {
	return Services{s}.WaitFor(ctx, deadline, done)
}

// Services are the instances of one run.
type Services []*Service

// WaitFor reads every service's /metrics every pollEvery, giving done one
// Scrape with all their samples, until done accepts a reading, the deadline
// passes or a service exits.
func (ss Services) WaitFor(ctx context.Context, deadline time.Time, done func(Scrape) bool) (Scrape, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		sc, err := ss.read(ctx)
		if err == nil && done(sc) {
			return sc, nil
		}
		if time.Now().After(deadline) {
			return sc, fmt.Errorf("timed out waiting for nhisentry (last error %v; see %s)", err, ss[0].log)
		}
		for _, s := range ss {
			select {
			case <-s.done:
				return sc, s.ExitErr()
			default:
			}
		}
		select {
		case <-ctx.Done():
			return sc, ctx.Err()
		case <-tick.C:
		}
	}
}

// read reads every service once and notes each one's memory.
func (ss Services) read(ctx context.Context) (Scrape, error) {
	all := Scrape{At: time.Now()}
	for _, s := range ss {
		sc, err := s.Read(ctx)
		if err != nil {
			return all, err
		}
		s.PeakRSS = max(s.PeakRSS, Sum(sc.Samples, MetricRSS))
		all.Samples = append(all.Samples, sc.Samples...)
	}
	return all, nil
}

// PeakRSS is the highest resident memory of any of the services.
func (ss Services) PeakRSS() float64 {
	peak := 0.0
	for _, s := range ss {
		peak = max(peak, s.PeakRSS)
	}
	return peak
}

// Stop stops every service.
func (ss Services) Stop() {
	for _, s := range ss {
		s.Stop()
	}
}

// Read reads /metrics once.
func (s *Service) Read(ctx context.Context) (Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return Scrape{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Scrape{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Scrape{}, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	sc := Scrape{At: time.Now()}
	sc.Samples, err = ParseMetrics(resp.Body)
	return sc, err
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
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// configYAML is the service's configuration for the run: the defaults,
// with the broker, database, listen address and starter rule pack of the
// harness.
func configYAML(brokers []string, chAddr, db, listen, rulesFile string, repartition bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kafka:\n  brokers: [%s]\n  group_id: %s\n  batch_size: 5000\n", strings.Join(brokers, ", "), GroupID)
	if repartition {
		fmt.Fprintf(&b, "  repartition_topic: %s\n  links_topic: %s\n", RepartitionTopic, LinksTopic)
	}
	b.WriteString("  inputs:\n")
	formats := make([]string, 0, len(Topics))
	for f := range Topics {
		formats = append(formats, f)
	}
	sort.Strings(formats)
	for _, f := range formats {
		fmt.Fprintf(&b, "    - {topic: %s, format: %s}\n", Topics[f], f)
	}
	fmt.Fprintf(&b, "clickhouse:\n  addr: %q\n  database: %s\n", chAddr, db)
	fmt.Fprintf(&b, "detect:\n  rules: [%q]\nhttp:\n  listen: %q\nlog:\n  level: warn\n", rulesFile, listen)
	return b.String()
}
