package cloudaudit

import (
	"errors"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// errorCase is a negative case whose detail must also name what is wrong.
type errorCase struct {
	name, in, reason, detail string
}

// checkErrors runs the cases through ingesttest.Errors, then checks that
// each detail contains the case's substring and that a failed record
// leaves a non-empty dst as it was.
func checkErrors(t *testing.T, d ingest.Decoder, cases []errorCase) {
	t.Helper()
	var hc []ingesttest.ErrorCase
	for _, c := range cases {
		hc = append(hc, ingesttest.ErrorCase{Name: c.name, In: c.in, Reason: c.reason})
	}
	ingesttest.Errors(t, d, hc)
	for _, c := range cases {
		dst := make([]schemas.Event, 1)
		evs, err := d.Decode(dst, ingest.Record{Value: []byte(c.in)})
		var de *ingest.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: err = %v, want a *DecodeError", c.name, err)
			continue
		}
		if !strings.Contains(de.Detail, c.detail) {
			t.Errorf("%s: detail %q does not contain %q", c.name, de.Detail, c.detail)
		}
		if len(evs) != 1 {
			t.Errorf("%s: dst has %d events after an error, want it unchanged (1)", c.name, len(evs))
		}
	}
}

// field is one checked field of an event.
type field struct{ name, got, want string }

func checkFields(t *testing.T, fs []field) {
	t.Helper()
	for _, f := range fs {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
}
