package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/kafkasink"
	"github.com/nhisentry/nhisentry/response/providers"
)

// RespondConfig is the response policy and the providers it acts through.
type RespondConfig struct {
	response.Policy `yaml:",inline"`
	Providers       providers.Config `yaml:"providers"`
}

// validate lists every problem of the respond section.
func (c RespondConfig) validate() []error {
	names, errs := c.Providers.Validate("respond.providers")
	return append(errs, c.Policy.Validate("respond", names)...)
}

// newResponder builds the responder over store, with the audit topic when
// a Kafka cluster is configured. close releases what it opened.
func newResponder(ctx context.Context, cfg Config, store *chstore.Store, reg prometheus.Registerer, log *slog.Logger) (r *response.Responder, closeFn func(), err error) {
	provs, err := cfg.Respond.Providers.Open()
	if err != nil {
		return nil, nil, err
	}
	closeFn = func() {}
	var sinks []response.AuditSink
	if len(cfg.Kafka.Brokers) > 0 && cfg.Respond.Topic != "" {
		cluster, err := cfg.Kafka.cluster()
		if err != nil {
			return nil, nil, err
		}
		audit, err := kafkasink.NewAudit(cluster, cfg.Respond.Topic)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, audit)
		closeFn = func() { audit.Close() }
	}
	r, err = response.New(ctx, response.Options{
		Policy: cfg.Respond.Policy, Providers: provs, Store: store, Sinks: sinks,
		Evidence: store.Evidence, Blast: blastOf(store), Logger: log, Registerer: reg,
	})
	if err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("respond: %w", err)
	}
	return r, closeFn, nil
}

// blastOf reads an identity's callers from its stored baseline's mesh
// call graph.
func blastOf(store baseline.Store) func(context.Context, string) (response.Blast, error) {
	return func(ctx context.Context, id string) (response.Blast, error) {
		var b response.Blast
		err := store.LoadBaselines(ctx, []string{id}, func(bl *baseline.Baseline) error {
			if bl.Graph != nil {
				b = response.Blast{FanIn: bl.Graph.FanIn, Callers: bl.Graph.Callers}
			}
			return nil
		})
		return b, err
	}
}
