package main

import (
	"context"
	"math"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/bench/internal/e2e"
)

type e2eOptions struct {
	service  e2e.Flags
	dir      string
	seed     int64
	backlog  int
	liveRate int
	liveFor  time.Duration
	timeout  time.Duration
	// instances > 1 scales out through the repartition topic.
	instances int
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
	peakRSS          float64 // of the largest instance
	instances        int
}

func runEndToEnd(ctx context.Context, o e2eOptions, rulesFile string, logf func(string, ...any)) (e2eResult, error) {
	var res e2eResult
	b, err := e2e.StartBroker()
	if err != nil {
		return res, err
	}
	defer b.Close()

	// The backlog is produced before the service starts, so the service
	// reads as fast as it can: its rate is the sustained figure.
	logf("producing %d backlog records", o.backlog)
	n, err := e2e.Produce(ctx, b.Client, gen.Config{Seed: o.seed, Start: benchStart, Duration: 60 * 24 * time.Hour, Attacks: true}, o.backlog, false)
	if err != nil {
		return res, err
	}
	res.backlog = n

	res.instances = max(o.instances, 1)
	var svc e2e.Services
	defer func() { svc.Stop() }()
	for i := range res.instances {
		s, err := e2e.StartService(ctx, e2e.ServiceOptions{Flags: o.service, Brokers: b.Addrs(),
			Dir: o.dir, RulesFile: rulesFile, Instance: i, Repartition: res.instances > 1})
		if err != nil {
			return res, err
		}
		svc = append(svc, s)
		logf("nhisentry instance %d started (log %s)", i, s.Log())
	}
	logf("waiting for %d records", n)
	deadline := time.Now().Add(o.timeout)
	first, err := svc.WaitFor(ctx, deadline, func(s e2e.Scrape) bool { return e2e.InputRecords(s.Samples) > 0 })
	if err != nil {
		return res, err
	}
	last, err := svc.WaitFor(ctx, deadline, func(s e2e.Scrape) bool { return e2e.Done(s.Samples, float64(n), res.instances > 1) })
	if err != nil {
		return res, err
	}
	// The first reading already counts what was read before it, so the
	// rates are taken between the two readings.
	if d := last.At.Sub(first.At).Seconds(); d > 0 {
		res.sustained = (e2e.InputRecords(last.Samples) - e2e.InputRecords(first.Samples)) / d
		res.sustainedEvents = (e2e.Sum(last.Samples, e2e.MetricEvents) - e2e.Sum(first.Samples, e2e.MetricEvents)) / d
	}

	// The live phase: records stamped with the current time, produced at a
	// fixed rate after the backlog drained, so event time to finding
	// delivery is the pipeline's latency. Another seed makes another
	// population, whose first activity the detectors report; the attack
	// scenarios are left out because their bursts would swamp the rate.
	before := e2e.Buckets(last.Samples, e2e.MetricLatency)
	logf("live phase: %d records/s for %s", o.liveRate, o.liveFor)
	liveStart := time.Now().Add(2 * time.Second).Truncate(time.Second)
	live, err := e2e.Produce(ctx, b.Client, gen.Config{Seed: o.seed + 1, Start: liveStart, Duration: o.liveFor,
		EventsPerIdentityHour: e2e.EventsPerIdentityHour(float64(o.liveRate))}, math.MaxInt, true)
	if err != nil {
		return res, err
	}
	res.live = live
	res.liveRate = float64(live) / time.Since(liveStart).Seconds()
	end, err := svc.WaitFor(ctx, time.Now().Add(o.timeout), func(s e2e.Scrape) bool {
		return e2e.Done(s.Samples, float64(n+live), res.instances > 1)
	})
	if err != nil {
		return res, err
	}
	d := e2e.Delta(e2e.Buckets(end.Samples, e2e.MetricLatency), before)
	res.findings = d[math.Inf(1)]
	res.p50, res.p99 = e2e.Quantile(0.50, d), e2e.Quantile(0.99, d)
	res.identities = e2e.Sum(end.Samples, e2e.MetricCacheIDs)
	if res.identities > 0 {
		res.bytesPerIdentity = e2e.Sum(end.Samples, e2e.MetricCacheBytes) / res.identities
	}
	res.peakRSS = svc.PeakRSS()
	return res, nil
}
