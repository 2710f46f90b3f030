package issuance

import (
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
)

// errorCases turns {name, input, reason} rows into harness cases.
func errorCases(rows [][3]string) []ingesttest.ErrorCase {
	out := make([]ingesttest.ErrorCase, len(rows))
	for i, r := range rows {
		out[i] = ingesttest.ErrorCase{Name: r[0], In: r[1], Reason: r[2]}
	}
	return out
}
