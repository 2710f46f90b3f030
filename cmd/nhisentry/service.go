package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/builtin"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/detectors/rules"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/kafkasink"
	"github.com/nhisentry/nhisentry/response/outputs"
	"github.com/nhisentry/nhisentry/schemas"
)

// service is the whole pipeline of `nhisentry run`: Kafka in, decoders,
// ClickHouse, detectors and rules, findings out.
type service struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	store  *chstore.Store
	source *kafkasrc.Source
	dlq    *kafkasrc.DeadLetters
	// With a repartition topic: the ingest stage's handler, and the
	// detector stage's input with the partitions it owns.
	repart    *kafkasrc.Repartitioner
	cluster   kafkasrc.Cluster
	detectSrc *kafkasrc.Partitioned
	owner     *owner
	findings  *kafkasink.Sink
	engine    *engine.Engine
	rules     *rules.Engine
	decoders  map[string]ingest.Decoder
	linker    *ingest.Linker
	cache     *baseline.Cache
	rebuild   *baseline.Rebuilder
	outputs   []outputs.Configured
	forward   []*outputs.Forwarder
	fwdSrc    []*kafkasrc.Source
	lag       *outputs.Lag
	respond   *response.Responder
	closeRsp  func()
	ready     atomic.Bool
}

// newService connects to ClickHouse, applies the schema, loads the baselines
// already stored and joins the consumer group. Nothing is consumed before the
// baselines are loaded, so no stored history is mistaken for new.
func newService(ctx context.Context, cfg Config, log *slog.Logger) (*service, error) {
	s := newIdleService(cfg, log)
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// newIdleService returns a service that has opened nothing yet, so its
// HTTP endpoints can answer (/healthz up, /readyz not yet) while start
// connects and loads the baselines, which can take minutes.
func newIdleService(cfg Config, log *slog.Logger) *service {
	s := &service{cfg: cfg, log: log, reg: prometheus.NewRegistry(), decoders: map[string]ingest.Decoder{}}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// start opens everything and becomes ready; on error it has closed what it
// opened.
func (s *service) start(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	for _, in := range cfg.Kafka.Inputs {
		d, err := formats.ByName(in.Format)
		if err != nil {
			return err
		}
		s.decoders[in.Topic] = d
	}
	s.linker = ingest.NewLinker(0)
	dets, re, err := newDetectors(cfg.Detect, s.linker.Lookup, s.reg, log)
	if err != nil {
		return err
	}
	s.rules = re

	topics := make([]string, 0, len(cfg.Kafka.Inputs)+2)
	for _, in := range cfg.Kafka.Inputs {
		topics = append(topics, in.Topic)
	}
	cluster, err := cfg.Kafka.cluster()
	if err != nil {
		return err
	}
	s.cluster = cluster
	required := append(topics, cfg.Kafka.FindingsTopic, cfg.Kafka.DeadLetterTopic)
	if cfg.Kafka.RepartitionTopic != "" {
		required = append(required, cfg.Kafka.RepartitionTopic, cfg.Kafka.LinksTopic)
	}
	if cfg.Respond.Enabled {
		required = append(required, cfg.Respond.Topic)
	}
	if err := kafkasrc.CheckTopics(ctx, cluster, required...); err != nil {
		return err
	}

	store, err := chstore.Open(ctx, cfg.ClickHouse, log)
	if err != nil {
		return err
	}
	s.store = store
	if _, err := store.Migrate(ctx); err != nil {
		s.close()
		return err
	}
	s.cache = baseline.NewCache(baseline.CacheOptions{Budget: cfg.Baseline.CacheBudget, Classes: cfg.Baseline.Classes, Loader: store})
	if cfg.Kafka.RepartitionTopic != "" {
		n, err := kafkasrc.Partitions(ctx, cluster, cfg.Kafka.RepartitionTopic)
		if err != nil {
			s.close()
			return err
		}
		// Nothing is owned until the group assigns partitions; each
		// partition's baselines are then loaded as its events arrive.
		s.owner = newOwner(n, s.reg)
		s.cache.Own(s.owner.owns)
	}
	rebuild := cfg.Baseline.Rebuild
	rebuild.Observe = rebuildMetrics(s.reg)
	rebuild.Clock = func() time.Time {
		if s.engine == nil { // the rebuild at start, before any event
			return time.Now()
		}
		return s.engine.DataClock()
	}
	s.rebuild = baseline.NewRebuilder(store, s.cache, cfg.Baseline.Classes, rebuild, log)
	// Roll up and rebuild what is stored but not yet in a baseline (cold
	// start by backfill), then load every baseline.
	start := time.Now()
	if _, err := s.rebuild.Rebuild(ctx, false); err != nil {
		s.close()
		return err
	}
	if s.owner == nil {
		if err := s.cache.Load(ctx); err != nil {
			s.close()
			return err
		}
	}
	registerCacheMetrics(s.reg, s.cache)
	log.Info("baselines loaded", "identities", s.cache.Len(), "took", time.Since(start).Round(time.Millisecond))
	err = store.LoadIssuances(ctx, func(ev *schemas.Event) {
		if k, ok := ingest.LinkOf(ev); ok {
			s.linker.Add(k)
		}
	})
	if err != nil {
		s.close()
		return err
	}
	log.Info("credential links loaded", "credentials", s.linker.Len())

	if s.findings, err = kafkasink.New(cluster, cfg.Kafka.FindingsTopic); err != nil {
		s.close()
		return err
	}
	if s.dlq, err = kafkasrc.NewDeadLetters(cluster, cfg.Kafka.DeadLetterTopic); err != nil {
		s.close()
		return err
	}
	if cfg.Respond.Enabled {
		if s.respond, s.closeRsp, err = newResponder(ctx, cfg, store, s.reg, log); err != nil {
			s.close()
			return err
		}
	}
	if err := s.openOutputs(cluster); err != nil {
		s.close()
		return err
	}
	sinks := []engine.FindingSink{store, s.findings}
	if s.lag != nil && cfg.Outputs.MaxLag > 0 {
		sinks = append(sinks, s.lag) // last: findings are stored before detection waits
	}
	s.engine = engine.New(engine.Options{
		Cache: s.cache, Detectors: dets,
		Events: store, Sinks: sinks,
		Logger: log, Registerer: s.reg,
	})
	if s.owner == nil {
		// A finding raised again after a restart continues its revisions.
		s.recall(ctx, func(string) bool { return true })
	}
	s.source, err = kafkasrc.New(kafkasrc.Config{
		Cluster: cluster, GroupID: cfg.Kafka.GroupID, Topics: topics,
		BatchSize: cfg.Kafka.BatchSize, Linger: cfg.Kafka.Linger, StartFirst: cfg.Kafka.StartFrom == "earliest",
	}, log, s.reg)
	if err != nil {
		s.close()
		return err
	}
	if s.owner != nil {
		if err := s.openRepartition(); err != nil {
			s.close()
			return err
		}
	}
	s.ready.Store(true)
	return nil
}

// openRepartition opens both ends of the repartition topic: the writer the
// ingest stage hands its events to, and the detector stage's group member,
// whose handovers go through ClickHouse. A member giving up partitions
// first rolls up and rebuilds the baselines from the events it stored, then
// forgets those identities; the member receiving them loads each identity's
// rebuilt baseline before detecting its first event (Cache.Prepare). The
// group waits for the giving side, so no identity is ever detected in two
// places or from stale state.
func (s *service) openRepartition() error {
	cfg := s.cfg.Kafka
	var err error
	if s.repart, err = kafkasrc.NewRepartitioner(s.cluster, cfg.RepartitionTopic, cfg.LinksTopic, ingest.Backoff{}, s.log); err != nil {
		return err
	}
	lag := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nhi_detect_consumer_lag",
		Help: "Records of the repartition topic behind the newest offset on the partitions this instance detects for.",
	})
	s.reg.MustRegister(lag)
	s.detectSrc, err = kafkasrc.NewPartitioned(kafkasrc.PartitionedConfig{
		Cluster: s.cluster, GroupID: cfg.GroupID + ".detect", Topic: cfg.RepartitionTopic, Lag: lag,
		BatchSize: cfg.BatchSize, Linger: cfg.Linger, StartFirst: cfg.StartFrom == "earliest",
		// The cache asks s.owner.owns, so gaining partitions needs no call to
		// Cache.Own; losing them does, to drop what is no longer owned.
		OnAssigned: func(ctx context.Context, parts []int) {
			s.owner.set(parts, true)
			recalled := s.recall(ctx, s.owner.owns)
			s.log.Info("detecting for repartition partitions", "assigned", parts, "owned", s.owner.list(), "findings_recalled", recalled)
		},
		OnRevoked: func(ctx context.Context, parts []int) {
			start := time.Now()
			flush, cancel := context.WithTimeout(ctx, s.cfg.Pipeline.DrainTimeout)
			_, err := s.rebuild.Rebuild(flush, false)
			cancel()
			if err != nil {
				// The next owner then loads the previous baselines; the events
				// are stored, and the next rebuild anywhere learns them.
				s.log.Warn("handover: baseline rebuild failed", "err", err)
			}
			s.owner.set(parts, false)
			dropped := s.cache.Own(s.owner.owns)
			s.log.Info("handed over repartition partitions", "revoked", parts, "identities", dropped,
				"owned", s.owner.list(), "took", time.Since(start).Round(time.Millisecond))
		},
	}, s.log)
	return err
}

// recallWindow is how far back stored findings are recalled when identities
// arrive (start, handover): a finding quiet for longer starts over.
const recallWindow = 7 * 24 * time.Hour

// recall makes the engine remember the findings delivered for the
// identities owns reports, and returns how many. A failure is logged, not
// fatal: detection goes on, and a repeated finding is delivered as new.
func (s *service) recall(ctx context.Context, owns func(string) bool) int {
	n, err := s.engine.Recall(ctx, s.store, time.Now().Add(-recallWindow), owns)
	if err != nil {
		s.log.Warn("recall stored findings", "err", err)
	}
	return n
}

// openOutputs opens the configured outputs, each with a Forwarder that
// reads the findings topic in its own consumer group
// (<group_id>.output.<name>), and the lag monitor over those groups.
func (s *service) openOutputs(cluster kafkasrc.Cluster) error {
	cfg := s.cfg.Outputs
	for i := range cfg.Syslog {
		cfg.Syslog[i].ProductVersion = version
	}
	outs, err := cfg.Open()
	if err != nil {
		return err
	}
	if s.respond != nil {
		// The responder reads the findings topic like an output: responding
		// never slows detection, and its consumer group resumes after a
		// restart.
		outs = append(outs, outputs.Configured{Output: s.respond})
	}
	s.outputs = outs
	if len(outs) == 0 {
		return nil
	}
	m := outputs.NewMetrics(s.reg)
	groups := map[string]string{}
	for _, o := range outs {
		name := o.Output.Name()
		groups[name] = s.cfg.Kafka.GroupID + ".output." + name
		src, err := kafkasrc.New(kafkasrc.Config{
			Cluster: cluster, GroupID: groups[name], Topics: []string{s.cfg.Kafka.FindingsTopic},
			BatchSize: cfg.BatchSize, Linger: cfg.Linger, StartFirst: true,
		}, s.log, nil) // nil: output lag is measured by outputs.Lag, not the ingest gauge
		if err != nil {
			return fmt.Errorf("output %s: %w", name, err)
		}
		s.fwdSrc = append(s.fwdSrc, src)
		s.forward = append(s.forward, outputs.NewForwarder(o.Output, outputs.ForwarderOptions{
			Source: src, MinSeverity: o.MinSeverity, Logger: s.log, Metrics: m,
		}))
	}
	client, err := cluster.Client()
	if err != nil {
		return err
	}
	s.lag = outputs.NewLag(outputs.LagOptions{Client: client, Topic: s.cfg.Kafka.FindingsTopic, Groups: groups,
		MaxLag: cfg.MaxLag, Metrics: m, Logger: s.log})
	s.log.Info("outputs", "count", len(outs), "max_lag", cfg.MaxLag)
	return nil
}

// forwardUntil runs one output's Forwarder until ctx ends, starting it
// again after an error (a failed commit repeats the batch: at least once).
func (s *service) forwardUntil(ctx context.Context, f *outputs.Forwarder) {
	for ctx.Err() == nil {
		if err := f.Run(ctx); err != nil {
			s.log.Error("output forwarder stopped; restarting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// newDetectors builds the enabled built-in detectors and, when rule files are
// configured, the CEL rule engine, whose evaluation errors are counted in reg.
func newDetectors(cfg DetectConfig, lookup ingest.LinkLookup, reg prometheus.Registerer, log *slog.Logger) ([]detectors.Detector, *rules.Engine, error) {
	ruleErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nhi_rules_eval_errors_total", Help: "CEL rule evaluations that failed (cost limit, runtime error), by rule.",
	}, []string{"rule"})
	reg.MustRegister(ruleErrors)
	dets := builtin.New(cfg.Builtin, lookup)
	if len(cfg.Rules) == 0 {
		return dets, nil, nil
	}
	re, err := rules.NewEngine(rules.Options{
		CostLimit: cfg.RuleCostLimit,
		OnError: func(id string, err error) {
			ruleErrors.WithLabelValues(id).Inc()
			log.Warn("rule evaluation failed", "rule", id, "err", err)
		},
	}, cfg.Rules...)
	if err != nil {
		return nil, nil, fmt.Errorf("load rules: %w", err)
	}
	return append(dets, re), re, nil
}

// run consumes until ctx is cancelled, then finishes the batch in flight.
// onBatch, if not nil, sees the totals after every committed batch.
// Baselines are rebuilt on their schedule meanwhile and once more after the
// drain, so the next start loads everything this run learned.
func (s *service) run(ctx context.Context, onBatch func(ingest.Stats)) (ingest.Stats, error) {
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go s.rebuild.Run(bg)
	go s.retain(bg)
	for _, f := range s.forward {
		go s.forwardUntil(bg, f)
	}
	if s.lag != nil {
		go s.lag.Run(bg)
	}
	if s.respond != nil {
		go s.respond.RunRetries(bg, 2*time.Second)
	}
	if s.repart != nil {
		go s.followLinks(bg)
	}
	st, err := s.consume(ctx, onBatch)
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Pipeline.DrainTimeout)
	defer cancel()
	if _, rerr := s.rebuild.Rebuild(final, false); rerr != nil {
		s.log.Warn("final baseline rebuild failed; the next start rebuilds", "err", rerr)
	}
	return st, err
}

// followLinks adds to this instance's linker the credential issuances every
// instance's ingest stage shares, until ctx ends.
func (s *service) followLinks(ctx context.Context) {
	err := kafkasrc.FollowLinks(ctx, s.cluster, s.cfg.Kafka.LinksTopic, s.log, func(ev *schemas.Event) {
		if k, ok := ingest.LinkOf(ev); ok {
			s.linker.Add(k)
		}
	})
	if err != nil {
		s.log.Error("links topic: not followed; credentials issued where other instances read are not resolved here", "err", err)
	}
}

// consume runs the pipeline until ctx ends: one loop from the input topics
// through detection, or, with a repartition topic, an ingest loop into it
// and a detector loop out of it. It returns the ingest loop's counts.
func (s *service) consume(ctx context.Context, onBatch func(ingest.Stats)) (ingest.Stats, error) {
	in := ingest.RunOptions{
		Source: s.source, Decoders: s.decoders, DeadLetter: s.dlq, Linker: s.linker, Handler: s.engine,
		Logger: s.log, Registerer: s.reg, OnBatch: onBatch,
		MaxRecordBytes: s.cfg.Pipeline.MaxRecordBytes, DrainTimeout: s.cfg.Pipeline.DrainTimeout,
	}
	if s.detectSrc == nil {
		return ingest.Run(ctx, in)
	}
	detect := in
	detect.Source, detect.Handler, detect.Linker, detect.OnBatch = s.detectSrc, s.engine, nil, nil
	detect.Decoders = map[string]ingest.Decoder{s.cfg.Kafka.RepartitionTopic: kafkasrc.EventDecoder{}}
	detect.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"stage": "detect"}, s.reg)
	detect.Logger = s.log.With("stage", "detect")
	in.Handler = s.repart
	in.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"stage": "ingest"}, s.reg)
	// Either loop failing stops both: the failed one's batch is not
	// committed and is read again after a restart.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	detected := make(chan error, 1)
	go func() {
		_, err := ingest.Run(ctx, detect)
		stop()
		detected <- err
	}()
	st, err := ingest.Run(ctx, in)
	stop()
	return st, errors.Join(err, <-detected)
}

// retain drops stored months older than the configured retention, hourly.
func (s *service) retain(ctx context.Context) {
	r := s.cfg.Baseline.Retention
	tables := []struct {
		keep  time.Duration
		names []string
	}{
		{r.Events, []string{"events"}}, {r.Rollups, []string{"identity_hourly", "identity_values"}},
		{r.Findings, []string{"findings"}}, {r.Audit, []string{"response_audit"}},
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		for _, tb := range tables {
			if tb.keep <= 0 {
				continue
			}
			for _, name := range tb.names {
				dropped, err := s.store.DropBefore(ctx, name, time.Now().Add(-tb.keep))
				if err != nil && ctx.Err() == nil {
					s.log.Warn("retention", "table", name, "err", err)
				} else if len(dropped) > 0 {
					s.log.Info("retention dropped old months", "table", name, "partitions", dropped)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rebuildMetrics counts baseline rebuilds by result and times them.
func rebuildMetrics(reg prometheus.Registerer) func(baseline.RebuildStats, error) {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nhi_baseline_rebuilds_total", Help: "Baseline rebuilds, by result (ok, error).",
	}, []string{"result"})
	built := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nhi_baseline_built_total", Help: "Identity and cohort baselines built and stored.",
	})
	took := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nhi_baseline_rebuild_duration_seconds", Help: "Time of one baseline rebuild: rollup, build, save.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	})
	reg.MustRegister(runs, built, took)
	return func(st baseline.RebuildStats, err error) {
		if err != nil {
			runs.WithLabelValues("error").Inc()
			return
		}
		runs.WithLabelValues("ok").Inc()
		built.Add(float64(st.Built + st.Cohorts))
		took.Observe(st.Took.Seconds())
	}
}

// registerCacheMetrics exposes the baseline cache's size and evictions.
func registerCacheMetrics(reg prometheus.Registerer, c *baseline.Cache) {
	gauge := func(name, help string, v func(baseline.CacheStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(c.Stats()) })
	}
	counter := func(name, help string, v func(baseline.CacheStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(c.Stats()) })
	}
	reg.MustRegister(
		gauge("nhi_baseline_cache_identities", "Identities whose baselines the processor caches.",
			func(s baseline.CacheStats) float64 { return float64(s.Identities) }),
		gauge("nhi_baseline_cache_bytes", "Estimated memory of the cached baselines.",
			func(s baseline.CacheStats) float64 { return float64(s.Bytes) }),
		counter("nhi_baseline_cache_evictions_total", "Baselines evicted from the cache to stay within its budget.",
			func(s baseline.CacheStats) float64 { return float64(s.Evicted) }),
		counter("nhi_baseline_cache_loads_total", "Baselines loaded into the cache from the store.",
			func(s baseline.CacheStats) float64 { return float64(s.Loaded) }),
	)
}

// close releases everything newService opened, in reverse order.
func (s *service) close() {
	s.ready.Store(false)
	var closers []interface{ Close() error }
	if s.source != nil {
		closers = append(closers, s.source)
	}
	if s.detectSrc != nil {
		closers = append(closers, s.detectSrc)
	}
	if s.repart != nil {
		closers = append(closers, s.repart)
	}
	for _, src := range s.fwdSrc {
		closers = append(closers, src)
	}
	for _, o := range s.outputs {
		closers = append(closers, o.Output)
	}
	if s.dlq != nil {
		closers = append(closers, s.dlq)
	}
	if s.findings != nil {
		closers = append(closers, s.findings)
	}
	if s.closeRsp != nil {
		s.closeRsp()
	}
	if s.store != nil {
		closers = append(closers, s.store)
	}
	for _, c := range closers {
		if err := c.Close(); err != nil {
			s.log.Warn("close", "err", err)
		}
	}
}

// serveHTTP serves /metrics, /healthz (the process is up) and /readyz (the
// pipeline is consuming) until ctx ends.
func (s *service) serveHTTP(ctx context.Context, addr string) (string, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
