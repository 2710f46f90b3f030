package response

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	actions        *prometheus.CounterVec
	providerErrors *prometheus.CounterVec
	ignored        prometheus.Counter
	sinkErrors     prometheus.Counter
	breakerOpen    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_response_actions_total",
			Help: "Response actions audited, by provider, action and status (dry_run, shadow, skipped, pending_approval, running, succeeded, queued, failed, rejected, undone).",
		}, []string{"provider", "action", "status"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_response_provider_errors_total", Help: "Failed provider calls, by provider and kind (retryable, permanent).",
		}, []string{"provider", "kind"}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nhi_response_findings_ignored_total", Help: "Findings under the thresholds or matching no response rule.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nhi_response_audit_topic_errors_total", Help: "Audit records stored but not copied to the audit topic.",
		}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nhi_response_circuit_open", Help: "1 while the response circuit breaker stops automation.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.actions, m.providerErrors, m.ignored, m.sinkErrors, m.breakerOpen)
	}
	return m
}
