package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/schemas"
)

// demoTopics maps each generated format to its input topic.
var demoTopics = map[string]string{
	gen.FormatEnvoy:      "nhi.mesh.envoy",
	gen.FormatKong:       "nhi.gateway.kong",
	gen.FormatCloudTrail: "nhi.cloud.cloudtrail",
	gen.FormatVault:      "nhi.issuance.vault",
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	days := fs.Int("days", 7, "simulated days of telemetry")
	seed := fs.Int64("seed", 1, "generator seed")
	chAddr := fs.String("clickhouse", envOr("NHI_CLICKHOUSE_ADDR", "127.0.0.1:19000"), "ClickHouse native address")
	db := fs.String("database", "nhisentry_demo", "ClickHouse database for the demo (dropped and recreated)")
	verbose := fs.Bool("v", false, "log every finding and the pipeline's progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	started := time.Now()

	// 1. An in-process Kafka-protocol broker with the demo's topics.
	inputs := make([]string, 0, len(demoTopics))
	for _, t := range demoTopics {
		inputs = append(inputs, t)
	}
	sort.Strings(inputs)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, inputs...),
		kfake.SeedTopics(1, "nhi.findings", "nhi.deadletter", "nhi.responses"))
	if err != nil {
		return fmt.Errorf("start in-process broker: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(stdout, "broker: in-process Kafka protocol (kfake) on %s\n", strings.Join(brokers, ","))

	// 2. A simulated week of telemetry with attacks, produced into the topics.
	produced, labels, err := produceDemo(ctx, brokers, gen.Config{
		Seed: *seed, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		Duration: time.Duration(*days) * 24 * time.Hour, Attacks: true, Malformed: 12,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated: %d records over %d simulated days, %d labeled attacks\n", produced, *days, len(labels))

	// 3. The real pipeline, as `nhisentry run` builds it.
	rulesFile, removeRules, err := defaultRulesFile()
	if err != nil {
		return err
	}
	defer removeRules()
	cfg := defaultConfig()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.GroupID = "nhisentry-demo"
	for _, format := range []string{gen.FormatEnvoy, gen.FormatKong, gen.FormatCloudTrail, gen.FormatVault} {
		cfg.Kafka.Inputs = append(cfg.Kafka.Inputs, InputConfig{Topic: demoTopics[format], Format: format})
	}
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = *chAddr, *db
	cfg.Detect.Rules = []string{rulesFile}
	if err := configErrors("", cfg.validate()); err != nil {
		return err
	}
	if err := dropDatabase(ctx, cfg.ClickHouse, log); err != nil {
		return err
	}
	svc, err := newService(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("%w\n(the demo needs ClickHouse: run `make demo`, or start one with deploy/local/clickhouse.sh start)", err)
	}
	defer svc.close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	st, err := svc.run(runCtx, func(s ingest.Stats) {
		if s.Records >= uint64(produced) {
			stop()
		}
	})
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	elapsed := time.Since(started)

	// 4. What came out, read back from where a SOC and an analyst would read it.
	findings, err := readFindings(ctx, brokers)
	if err != nil {
		return err
	}
	reasons, err := readDeadLetterReasons(ctx, brokers)
	if err != nil {
		return err
	}
	stored, err := countRows(ctx, svc.store, "events")
	if err != nil {
		return err
	}
	storedFindings, err := countRows(ctx, svc.store, "findings")
	if err != nil {
		return err
	}
	baselines, err := countRows(ctx, svc.store, "baselines")
	if err != nil {
		return err
	}
	printFindings(stdout, findings)
	printSummary(stdout, demoSummary{
		produced: produced, stats: st, stored: stored, storedFindings: storedFindings, baselines: baselines,
		reasons: reasons, findings: findings, labels: labels, elapsed: elapsed, database: *db,
	})
	if len(labels) > 0 {
		if err := printDemoBaseline(ctx, stdout, svc.store, labels[0].Identity, *db); err != nil {
			return err
		}
	}
	return demoRespond(ctx, stdout, cfg, svc.store, findings, labels, log)
}

// printDemoBaseline shows what the baseline of the first attacked identity
// looked like after the run, as `nhisentry baseline show` prints it.
func printDemoBaseline(ctx context.Context, w io.Writer, store baseline.Loader, id, db string) error {
	b, cohort, err := loadBaseline(ctx, store, id)
	if err != nil || b == nil {
		return err
	}
	fmt.Fprintf(w, "\nthe baseline of the first attacked identity (NHI_CLICKHOUSE_DATABASE=%s nhisentry baseline show %s):\n\n", db, id)
	return printBaseline(w, b, cohort)
}

// defaultRulesFile writes the embedded starter pack to a temporary file, for
// the commands that run without a configured rule directory.
func defaultRulesFile() (string, func(), error) {
	dir, err := os.MkdirTemp("", "nhisentry-rules")
	if err != nil {
		return "", nil, err
	}
	file := filepath.Join(dir, "default.yaml")
	if err := os.WriteFile(file, pack.Default, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return file, func() { os.RemoveAll(dir) }, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func produceDemo(ctx context.Context, brokers []string, cfg gen.Config) (int, []gen.Label, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(50000))
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	var n int
	var firstErr error
	labels, err := gen.Generate(cfg, func(r gen.Record) error {
		if firstErr != nil {
			return firstErr
		}
		cl.Produce(ctx, &kgo.Record{Topic: demoTopics[r.Format], Key: r.Key, Value: r.Value, Timestamp: r.Time},
			func(_ *kgo.Record, err error) {
				if err != nil && firstErr == nil {
					firstErr = err
				}
			})
		n++
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("generate telemetry: %w", err)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, nil, fmt.Errorf("produce telemetry: %w", err)
	}
	if firstErr != nil {
		return 0, nil, fmt.Errorf("produce telemetry: %w", firstErr)
	}
	return n, labels, nil
}

func dropDatabase(ctx context.Context, cfg chstore.Config, log *slog.Logger) error {
	s, err := chstore.Open(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("%w\n(the demo needs ClickHouse: run `make demo`, or start one with deploy/local/clickhouse.sh start)", err)
	}
	defer s.Close()
	return s.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database)
}

func countRows(ctx context.Context, s *chstore.Store, table string) (uint64, error) {
	var n uint64
	err := s.Conn().QueryRow(ctx, "SELECT count() FROM "+s.Database()+"."+table+" FINAL").Scan(&n)
	return n, err
}

// readTopic reads every record of topic from the beginning to its end.
func readTopic(ctx context.Context, brokers []string, topic string, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	end, err := topicEnd(ctx, cl, topic)
	if err != nil {
		return err
	}
	var seen int64
	for seen < end {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		var ferr error
		fetches.EachRecord(func(r *kgo.Record) {
			seen++
			if ferr == nil {
				ferr = fn(r)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// topicEnd is the number of records in topic (sum of its high watermarks).
func topicEnd(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

func readFindings(ctx context.Context, brokers []string) ([]schemas.Finding, error) {
	byID := map[string]schemas.Finding{}
	err := readTopic(ctx, brokers, "nhi.findings", func(r *kgo.Record) error {
		f, err := schemas.ParseOCSF(r.Value)
		if err != nil {
			return fmt.Errorf("finding at offset %d: %w", r.Offset, err)
		}
		if prev, ok := byID[f.ID]; !ok || f.Revision >= prev.Revision {
			byID[f.ID] = f // a replay or a later revision has the same id
		}
		return nil
	})
	out := make([]schemas.Finding, 0, len(byID))
	for _, f := range byID {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen.Time) {
			return out[i].FirstSeen.Before(out[j].FirstSeen.Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

func readDeadLetterReasons(ctx context.Context, brokers []string) (map[string]int, error) {
	reasons := map[string]int{}
	err := readTopic(ctx, brokers, "nhi.deadletter", func(r *kgo.Record) error {
		for _, h := range r.Headers {
			if h.Key == kafkasrc.HeaderReason {
				reasons[string(h.Value)]++
			}
		}
		return nil
	})
	return reasons, err
}

func printFindings(w io.Writer, findings []schemas.Finding) {
	fmt.Fprintf(w, "\nfindings (%d):\n", len(findings))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT TIME\tDETECTOR\tSEVERITY\tSCORE\tIDENTITY\tEXPLANATION")
	for _, f := range findings {
		det := f.Detector
		if f.RuleID != "" {
			det = "rule:" + f.RuleID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", f.FirstSeen.Format("Mon 01-02 15:04"), det, f.Severity, f.Score, f.Identity.ID, f.Explanation)
	}
	tw.Flush()
}

type demoSummary struct {
	produced               int
	stats                  ingest.Stats
	stored, storedFindings uint64
	baselines              uint64
	reasons                map[string]int
	findings               []schemas.Finding
	labels                 []gen.Label
	elapsed                time.Duration
	database               string
}

func printSummary(w io.Writer, s demoSummary) {
	fmt.Fprintf(w, "\nsummary:\n")
	fmt.Fprintf(w, "  records in:        %d (produced %d)\n", s.stats.Records, s.produced)
	fmt.Fprintf(w, "  events decoded:    %d\n", s.stats.Events)
	fmt.Fprintf(w, "  events stored:     %d (ClickHouse %s.events, FINAL)\n", s.stored, s.database)
	var reasons []string
	for r, n := range s.reasons {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "  dead-lettered:     %d (%s)\n", s.stats.DeadLetters, strings.Join(reasons, ", "))
	byDet := map[string]int{}
	for _, f := range s.findings {
		byDet[f.Detector]++
	}
	var dets []string
	for d, n := range byDet {
		dets = append(dets, fmt.Sprintf("%s=%d", d, n))
	}
	sort.Strings(dets)
	fmt.Fprintf(w, "  baselines stored:  %d (ClickHouse %s.baselines, one versioned row per identity and cohort)\n", s.baselines, s.database)
	fmt.Fprintf(w, "  findings:          %d on the findings topic, %d in ClickHouse (%s)\n", len(s.findings), s.storedFindings, strings.Join(dets, ", "))
	fmt.Fprintf(w, "  attacks detected:\n")
	matched := map[string]bool{}
	for _, l := range s.labels {
		var hits []string
		for _, f := range s.findings {
			if f.Identity.ID == l.Identity && !f.FirstSeen.Before(l.Start) && !f.FirstSeen.After(l.End.Add(time.Hour)) {
				matched[f.ID] = true
				name := f.Detector
				if f.RuleID != "" {
					name = "rule:" + f.RuleID
				}
				hits = append(hits, name)
			}
		}
		verdict := "MISSED"
		if len(hits) > 0 {
			verdict = fmt.Sprintf("found by %s", strings.Join(uniq(hits), ", "))
		}
		fmt.Fprintf(w, "    %-32s %-60s %s\n", l.Scenario, l.Identity, verdict)
	}
	fmt.Fprintf(w, "  findings outside the labeled attacks: %d\n", len(s.findings)-len(matched))
	fmt.Fprintf(w, "  wall time:         %s\n", s.elapsed.Round(100*time.Millisecond))
}

func uniq(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}
