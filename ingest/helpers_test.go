package ingest

import (
	"reflect"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestRecordLimit(t *testing.T) {
	for n, want := range map[int]int{-1: DefaultMaxRecordBytes, 0: DefaultMaxRecordBytes, 1: 1, 4096: 4096} {
		if got := RecordLimit(n); got != want {
			t.Errorf("RecordLimit(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestCheckSizeAndUnwrapRecord(t *testing.T) {
	raw := []byte(`{"log":"hello","stream":"stdout"}`)
	if de := CheckSize("f", raw, len(raw)); de != nil {
		t.Fatalf("at the limit: %v", de)
	}
	de := CheckSize("f", raw, len(raw)-1)
	if de == nil || de.Format != "f" || de.Reason != ReasonTooLarge || de.Detail != "33 bytes, limit 32" {
		t.Fatalf("over the limit: %#v", de)
	}
	line, de := UnwrapRecord("f", raw, len(raw))
	if de != nil || string(line) != "hello" {
		t.Fatalf("UnwrapRecord = %q, %v; want hello", line, de)
	}
	// The limit applies to the record as read, wrapper included.
	if _, de := UnwrapRecord("f", raw, len(raw)-1); de == nil || de.Reason != ReasonTooLarge {
		t.Fatalf("UnwrapRecord over the limit: %v", de)
	}
}

func TestRecordProvenance(t *testing.T) {
	got := Record{Topic: "t", Partition: 3, Offset: 7, Value: []byte("x")}.Provenance()
	if want := (schemas.Provenance{Topic: "t", Partition: 3, Offset: 7}); got != want {
		t.Errorf("Provenance() = %+v, want %+v", got, want)
	}
}

// A null element decodes as "" (as goccy/go-json leaves a string at null);
// elements of other types are dropped.
func TestLenient(t *testing.T) {
	type doc struct {
		S   LenientString      `json:"s"`
		SS  LenientStrings     `json:"ss"`
		I   LenientInt         `json:"i"`
		IOS LenientIntOrString `json:"ios"`
	}
	cases := []struct {
		in   string
		want doc
	}{
		{`{"s":"a\"b","ss":["x",1,"y",null],"i":42,"ios":"900"}`, doc{S: `a"b`, SS: LenientStrings{"x", "y", ""}, I: 42, IOS: 900}},
		{`{"s":1,"ss":"one","i":"42","ios":3600}`, doc{SS: LenientStrings{"one"}, IOS: 3600}},
		{`{"s":{"a":1},"ss":{"a":1},"i":1.5,"ios":"x"}`, doc{}},
		{`{"s":null,"ss":null,"i":null,"ios":null}`, doc{}},
		{`{"s":[],"ss":[],"i":[1],"ios":"99999999999999999999"}`, doc{}},
	}
	for _, c := range cases {
		var got doc
		if err := json.Unmarshal([]byte(c.in), &got); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestFirstOf(t *testing.T) {
	if got := FirstOf("", "b", "c"); got != "b" {
		t.Errorf("FirstOf = %q, want b", got)
	}
	if got := FirstOf(); got != "" {
		t.Errorf("FirstOf() = %q, want empty", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"}, // é is two bytes: never cut inside it
		{"éé", 1, "…"},
	} {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestHTTPOutcome(t *testing.T) {
	for status, want := range map[int]schemas.Result{
		0: schemas.ResultFailure, 200: schemas.ResultSuccess, 302: schemas.ResultSuccess,
		401: schemas.ResultDenied, 403: schemas.ResultDenied, 404: schemas.ResultSuccess,
		500: schemas.ResultFailure, 503: schemas.ResultFailure,
	} {
		if got := HTTPOutcome(status); got != (schemas.Outcome{Result: want, Status: status}) {
			t.Errorf("HTTPOutcome(%d) = %+v, want %s", status, got, want)
		}
	}
}
