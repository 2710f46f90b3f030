package gateway

import (
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Test data layout: each decoder's inputs and golden files are in
// testdata/<format>/testdata/, and its tests chdir to testdata/<format> so
// that ingesttest, which globs testdata/* relative to the working directory,
// sees that decoder's files only (testdata/README.md).

// want is what a TestDecode case asserts about the one event of a record.
// Every field is compared, so an empty want field asserts an empty value.
type want struct {
	name       string
	file       string
	line       int
	events     int // events in the record; 0 means 1
	index      int // which of them to check
	id         string
	hashID     bool // id is schemas.HashID(format, the raw line)
	identity   schemas.Identity
	credential schemas.Credential
	actor      schemas.Actor
	action     string
	service    string
	target     schemas.Target
	outcome    schemas.Outcome
	source     schemas.Source
	time       string // schemas.TimeLayout
	bytesIn    uint64
	bytesOut   uint64
	durationMS float64
}

// checkDecode decodes each case's line with d (in d's testdata directory)
// and compares.
func checkDecode(t *testing.T, d ingest.Decoder, cases []want) {
	t.Helper()
	ingesttest.InFormatDir(t, d.Format())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			evs, err := d.Decode(nil, ingest.Record{Topic: "t", Partition: 3, Offset: 7, Value: raw})
			if err != nil {
				t.Fatal(err)
			}
			n := tc.events
			if n == 0 {
				n = 1
			}
			if len(evs) != n {
				t.Fatalf("got %d events, want %d", len(evs), n)
			}
			ev := evs[tc.index]
			wantID := tc.id
			if tc.hashID {
				wantID = schemas.HashID(d.Format(), raw)
			}
			check := func(field string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %#v, want %#v", field, got, want)
				}
			}
			check("id", ev.ID, wantID)
			check("time", ev.Time.Format(schemas.TimeLayout), tc.time)
			check("source", ev.Source, tc.source)
			check("identity", ev.Identity, tc.identity)
			check("credential", ev.Credential, tc.credential)
			check("actor", ev.Actor, tc.actor)
			check("action", ev.Action, tc.action)
			check("service", ev.Service, tc.service)
			check("target", ev.Target, tc.target)
			check("outcome", ev.Outcome, tc.outcome)
			check("bytes_in", ev.BytesIn, tc.bytesIn)
			check("bytes_out", ev.BytesOut, tc.bytesOut)
			check("duration_ms", ev.DurationMS, tc.durationMS)
			check("issuance", ev.Issuance == nil, true)
			check("provenance", ev.Provenance, schemas.Provenance{Topic: "t", Partition: 3, Offset: 7})
		})
	}
}
