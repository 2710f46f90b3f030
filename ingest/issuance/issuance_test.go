package issuance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nhisentry/nhisentry/ingest/ingesttest"
)

// Each decoder of this package keeps its inputs in testdata/<format>/testdata
// and its tests run there, so that the ingesttest harness, which reads
// testdata/* relative to the working directory, sees that decoder's files
// only.
//
// A fuzz worker process starts in the directory its coordinator was in,
// which is already testdata/<format>: it must not descend again.
func chdir(t testing.TB, format string) {
	t.Helper()
	if wd, err := os.Getwd(); err == nil && filepath.Base(wd) == format && filepath.Base(filepath.Dir(wd)) == "testdata" {
		return
	}
	t.Chdir(filepath.Join("testdata", format))
}

// errorCases turns {name, input, reason} rows into harness cases.
func errorCases(rows [][3]string) []ingesttest.ErrorCase {
	out := make([]ingesttest.ErrorCase, len(rows))
	for i, r := range rows {
		out[i] = ingesttest.ErrorCase{Name: r[0], In: r[1], Reason: r[2]}
	}
	return out
}
