package schemas_test

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestOCSFDetectionFinding(t *testing.T) {
	at := time.Date(2026, 11, 6, 13, 20, 4, 123000000, time.UTC)
	for _, tc := range []struct {
		name string
		f    schemas.Finding
	}{
		{"detector", schemas.Finding{
			ID: "4f1c", Detector: "new_value", Identity: schemas.Identity{ID: "aws:role/111122223333/media-api", Kind: schemas.KindRole, Name: "media-api"},
			Severity: schemas.SeverityHigh, Score: 95, Title: "New network for aws:role/111122223333/media-api",
			Explanation: "network 203.0.113.0/24 never seen for aws:role/111122223333/media-api; 1 known, set unchanged for 4.5 days",
			Technique:   "T1078.004", EventIDs: []string{"ev-1"}, FirstSeen: schemas.At(at), LastSeen: schemas.At(at.Add(time.Minute)), Count: 1,
			Analysis: schemas.Analysis{Pattern: schemas.PatternUnseen, Observed: "network=203.0.113.0/24", Baseline: "1 known networks, last new one 4.5 days ago"},
		}},
		{"rule-update", schemas.Finding{
			ID: "9a2b", Detector: "rule", RuleID: "denied-burst", Identity: schemas.Identity{ID: "spiffe://td/ns/a/sa/b", Kind: schemas.KindWorkload},
			Severity: schemas.SeverityMedium, Score: 70, Title: "denied-burst", Explanation: "12 denied calls in the hour",
			EventIDs: []string{"e1", "e2"}, FirstSeen: schemas.At(at), LastSeen: schemas.At(at.Add(30 * time.Minute)), Count: 12, Revision: 2,
			Analysis: schemas.Analysis{Pattern: schemas.PatternMatch, Observed: "window.denied=12"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.MarshalIndent(tc.f.OCSF(), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := "testdata/ocsf_" + tc.name + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(want) != string(b)+"\n" {
				t.Errorf("OCSF form changed (go test ./schemas -update to accept):\n%s", b)
			}
			back, err := schemas.ParseOCSF(b)
			if err != nil {
				t.Fatal(err)
			}
			// Times travel in milliseconds.
			want2 := tc.f
			want2.FirstSeen, want2.LastSeen = schemas.At(tc.f.FirstSeen.Truncate(time.Millisecond)), schemas.At(tc.f.LastSeen.Truncate(time.Millisecond))
			if !reflect.DeepEqual(back, want2) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, want2)
			}
		})
	}
	if _, err := schemas.ParseOCSF([]byte(`{"class_uid":3002}`)); err == nil {
		t.Error("an Authentication event parsed as a finding")
	}
	if _, err := schemas.ParseOCSF([]byte(`{"class_uid":2004`)); err == nil {
		t.Error("truncated JSON parsed")
	}
}
