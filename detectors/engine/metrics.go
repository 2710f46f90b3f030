package engine

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	findings      *prometheus.CounterVec
	writeErrors   *prometheus.CounterVec
	replayed      prometheus.Counter
	latency       *prometheus.HistogramVec
	detectSeconds prometheus.Histogram
	storeSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_detect_findings_total",
			Help: "Findings emitted, by detector and severity (repeats suppressed).",
		}, []string{"detector", "severity"}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_engine_write_errors_total",
			Help: "Failed writes of findings or events (each is retried), by target.",
		}, []string{"target"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nhi_engine_replayed_events_total",
			Help: "Events redelivered after a rebalance that the baselines had already learned; stored again, not re-detected.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nhi_detect_latency_seconds",
			Help:    "From the time of the event that raised a finding to the finding's delivery, by telemetry family.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 18), // 50 ms to about 3.6 h
		}, []string{"family"}),
		detectSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nhi_detect_batch_duration_seconds",
			Help:    "Time to run all detectors over one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nhi_store_events_batch_duration_seconds",
			Help:    "Time to store one batch of events in ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.findings, m.writeErrors, m.replayed, m.latency, m.detectSeconds, m.storeSeconds)
	}
	return m
}
