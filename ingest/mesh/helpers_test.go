package mesh

import (
	"bytes"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Test data layout: each decoder's inputs and golden files live in
// testdata/<format>/testdata/, and its tests chdir into testdata/<format>
// so that the ingesttest harness (which globs testdata/*) sees only them.

// want is the expectation of one decoded record. The fields of the first
// group are always compared (empty means "must be empty"); those of the
// second only when set.
type want struct {
	id        string // "" means schemas.HashID(format, unwrapped line)
	identity  schemas.Identity
	peer      string // Actor.Peer
	target    string // Target.Peer
	action    string
	service   string
	result    schemas.Result
	errorCode string
	ip        string
	time      string // millisecond precision

	resource   string
	provider   string
	userAgent  string
	workload   string
	namespace  string
	status     int
	bytesIn    uint64
	bytesOut   uint64
	durationMS float64
}

type decodeCase struct {
	name string
	file string // in testdata/ (after the chdir)
	line int
	in   string // instead of file and line
	want
}

// runDecodeCases decodes each case with d and compares the fields.
func runDecodeCases(t *testing.T, d ingest.Decoder, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.in)
			if tc.file != "" {
				raw = ingesttest.Line(t, tc.file, tc.line)
			}
			checkEvent(t, d.Format(), raw, ingesttest.DecodeOne(t, d, raw), tc.want)
		})
	}
}

func checkEvent(t *testing.T, format string, raw []byte, ev schemas.Event, w want) {
	t.Helper()
	wantID := w.id
	if wantID == "" {
		wantID = schemas.HashID(format, bytes.TrimRight(ingest.Unwrap(raw), " \t\r\n"))
	}
	checks := []struct{ field, got, want string }{
		{"id", ev.ID, wantID},
		{"identity.id", ev.Identity.ID, w.identity.ID},
		{"identity.kind", string(ev.Identity.Kind), string(w.identity.Kind)},
		{"actor.peer", ev.Actor.Peer, w.peer},
		{"target.peer", ev.Target.Peer, w.target},
		{"action", ev.Action, w.action},
		{"service", ev.Service, w.service},
		{"outcome.result", string(ev.Outcome.Result), string(w.result)},
		{"outcome.error_code", ev.Outcome.ErrorCode, w.errorCode},
		{"actor.ip", ev.Actor.IP, w.ip},
		{"time", ev.Time.Format("2006-01-02T15:04:05.000Z07:00"), w.time},
		{"source.family", string(ev.Source.Family), string(schemas.FamilyMesh)},
		{"source.format", ev.Source.Format, format},
	}
	optional := []struct{ field, got, want string }{
		{"identity.name", ev.Identity.Name, w.identity.Name},
		{"target.resource", ev.Target.Resource, w.resource},
		{"source.provider", ev.Source.Provider, w.provider},
		{"actor.user_agent", ev.Actor.UserAgent, w.userAgent},
		{"actor.workload", ev.Actor.Workload, w.workload},
		{"actor.namespace", ev.Actor.Namespace, w.namespace},
	}
	for _, c := range optional {
		if c.want != "" {
			checks = append(checks, c)
		}
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if w.status != 0 && ev.Outcome.Status != w.status {
		t.Errorf("outcome.status = %d, want %d", ev.Outcome.Status, w.status)
	}
	if w.bytesIn != 0 && ev.BytesIn != w.bytesIn {
		t.Errorf("bytes_in = %d, want %d", ev.BytesIn, w.bytesIn)
	}
	if w.bytesOut != 0 && ev.BytesOut != w.bytesOut {
		t.Errorf("bytes_out = %d, want %d", ev.BytesOut, w.bytesOut)
	}
	if w.durationMS != 0 && ev.DurationMS != w.durationMS {
		t.Errorf("duration_ms = %v, want %v", ev.DurationMS, w.durationMS)
	}
	if ev.Credential != (schemas.Credential{}) || ev.Issuance != nil {
		t.Errorf("mesh logs carry no credential or issuance, got %+v %+v", ev.Credential, ev.Issuance)
	}
}
