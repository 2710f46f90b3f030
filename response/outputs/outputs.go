// Package outputs owns the delivery of findings to SIEMs and SOC alert
// streams: Splunk HTTP Event Collector, syslog (RFC 5424 with CEF or LEEF),
// and webhooks (signed JSON, Slack, PagerDuty Events v2).
//
// Each output is fed by a Forwarder that reads the findings topic with its
// own consumer group and commits only what the destination accepted. The
// topic is the durable buffer between detection and delivery: an output
// that is down holds its offsets, loses nothing across restarts and does not
// slow detection until it falls more than its configured max_lag behind;
// then the Gate holds the pipeline back (backpressure), saying so in the
// log and in nhi_output_backpressure.
//
// Delivery is at least once. Every wire form carries the finding's
// deterministic id and revision, so a receiver can drop a replay. The wire
// forms are documented in docs/outputs.md and pinned by golden files.
package outputs

import (
	"context"

	"github.com/nhisentry/nhisentry/schemas"
)

// Output delivers findings to one destination.
type Output interface {
	// Name identifies the output in logs, metrics and its consumer group;
	// it is unique within a configuration.
	Name() string
	// Deliver sends findings in order and returns nil only when the
	// destination accepted every one. After an error the Forwarder calls it
	// again with the same findings, so it must be safe to repeat.
	Deliver(ctx context.Context, findings []schemas.Finding) error
	// Close releases connections.
	Close() error
}

// Permanent marks an error that repeating the same request cannot fix (a
// 400 for a malformed payload). The Forwarder still never drops findings:
// it keeps retrying and counts the error under reason "permanent", because
// a destination's operator can fix the cause.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }
