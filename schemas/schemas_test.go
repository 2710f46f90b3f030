package schemas_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestEventJSONForm(t *testing.T) {
	ev := schemas.Event{
		ID:       "cloudtrail:1",
		Time:     schemas.At(time.Date(2026, 11, 2, 10, 0, 0, 0, time.FixedZone("x", 3600))),
		Source:   schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail"},
		Identity: schemas.Identity{ID: "aws:role/1/r", Kind: schemas.KindRole},
		Action:   "s3:GetObject",
		Outcome:  schemas.Outcome{Result: schemas.ResultDenied, Status: 403},
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"cloudtrail:1","time":"2026-11-02T09:00:00.000000Z","ingest_time":null,` +
		`"source":{"family":"cloud_audit","format":"cloudtrail"},"identity":{"id":"aws:role/1/r","kind":"role"},` +
		`"credential":{"issued_at":null,"expires_at":null},"actor":{},"action":"s3:GetObject","service":"",` +
		`"target":{},"outcome":{"result":"denied","status":403},"bytes_in":0,"bytes_out":0,"duration_ms":0,` +
		`"provenance":{"partition":0,"offset":0}}`
	if string(b) != want {
		t.Fatalf("JSON form changed:\n got %s\nwant %s", b, want)
	}
	var back schemas.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(ev.Time.Time) || back.Identity != ev.Identity || back.Outcome != ev.Outcome {
		t.Fatalf("round trip lost data: %+v", back)
	}
}

func TestTimeRejectsGarbage(t *testing.T) {
	for _, in := range []string{`12`, `"yesterday"`, `"2026-13-01T00:00:00Z"`} {
		var tm schemas.Time
		if err := json.Unmarshal([]byte(in), &tm); err == nil {
			t.Errorf("%s: want an error", in)
		}
	}
}

func TestIDsAreDeterministic(t *testing.T) {
	if schemas.HashID("kong", []byte("a")) != schemas.HashID("kong", []byte("a")) ||
		schemas.HashID("kong", []byte("a")) == schemas.HashID("envoy_json", []byte("a")) {
		t.Fatal("HashID must depend on exactly format and bytes")
	}
	if schemas.FindingID("d", "a", "bc") == schemas.FindingID("d", "ab", "c") {
		t.Fatal("FindingID parts must not run together")
	}
	if sev, ok := schemas.ParseSeverity("HIGH"); !ok || sev.Rank() != 4 {
		t.Fatalf("ParseSeverity(HIGH) = %v %v", sev, ok)
	}
}
