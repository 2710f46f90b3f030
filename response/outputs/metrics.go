package outputs

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the outputs' Prometheus metrics, labelled by output name.
type Metrics struct {
	delivered    *prometheus.CounterVec
	filtered     *prometheus.CounterVec
	errors       *prometheus.CounterVec
	batchSeconds *prometheus.HistogramVec
	lag          *prometheus.GaugeVec
	backpressure *prometheus.GaugeVec
}

// NewMetrics registers the outputs' metrics in reg (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_output_findings_total", Help: "Findings an output's destination accepted.",
		}, []string{"output"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_output_filtered_total", Help: "Findings below an output's min_severity, not sent.",
		}, []string{"output"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_output_errors_total",
			Help: "Failed deliveries (each retried), by output and reason: delivery, timeout, permanent, undecodable.",
		}, []string{"output", "reason"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nhi_output_batch_duration_seconds",
			Help:    "Time to deliver one batch of findings, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"output"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nhi_output_lag", Help: "Findings on the findings topic an output has not delivered yet.",
		}, []string{"output"}),
		backpressure: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nhi_output_backpressure", Help: "1 while detection waits because the output is more than max_lag behind.",
		}, []string{"output"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.filtered, m.errors, m.batchSeconds, m.lag, m.backpressure)
	}
	return m
}

// outputMetrics are one output's children.
type outputMetrics struct {
	delivered, filtered prometheus.Counter
	errors              *prometheus.CounterVec
	batchSeconds        prometheus.Observer
}

func (m *Metrics) of(name string) *outputMetrics {
	om := &outputMetrics{
		delivered:    m.delivered.WithLabelValues(name),
		filtered:     m.filtered.WithLabelValues(name),
		errors:       m.errors.MustCurryWith(prometheus.Labels{"output": name}),
		batchSeconds: m.batchSeconds.WithLabelValues(name),
	}
	for _, r := range []string{"delivery", "timeout", "permanent", "undecodable"} {
		om.errors.WithLabelValues(r) // exported at 0, so rate() works from the start
	}
	m.lag.WithLabelValues(name)
	m.backpressure.WithLabelValues(name)
	return om
}

func (om *outputMetrics) failed(err error) { om.errors.WithLabelValues(reason(err)).Inc() }

// Delivered, Errors, Lag and Backpressure return one output's series, for
// tests and for the demo's summary.
func (m *Metrics) Delivered(output string) prometheus.Counter {
	return m.delivered.WithLabelValues(output)
}

func (m *Metrics) Errors(output, reason string) prometheus.Counter {
	return m.errors.WithLabelValues(output, reason)
}

func (m *Metrics) Lag(output string) prometheus.Gauge { return m.lag.WithLabelValues(output) }

func (m *Metrics) Backpressure(output string) prometheus.Gauge {
	return m.backpressure.WithLabelValues(output)
}
