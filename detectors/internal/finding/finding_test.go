package finding

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestSeverity(t *testing.T) {
	for _, c := range []struct {
		score float64
		want  schemas.Severity
	}{
		{0, schemas.SeverityLow}, {59.99, schemas.SeverityLow}, {60, schemas.SeverityMedium},
		{79.9, schemas.SeverityMedium}, {80, schemas.SeverityHigh}, {100, schemas.SeverityHigh},
	} {
		if got := Severity(c.score); got != c.want {
			t.Errorf("Severity(%v) = %s, want %s", c.score, got, c.want)
		}
	}
}

func TestNew(t *testing.T) {
	at := schemas.At(time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC))
	ev := &schemas.Event{ID: "ev-1", Time: at, Identity: schemas.Identity{ID: "aws:role/1/etl"}}
	f := New("det", ev, "kind", []string{"k1", "k2"}, 79.5, "Title", "why", "T1", schemas.PatternRare, "obs", "base")
	want := schemas.Finding{
		ID: schemas.FindingID("det", "aws:role/1/etl", "kind", "k1", "k2"), Detector: "det", Identity: ev.Identity,
		Severity: schemas.SeverityMedium, Score: 80, Title: "Title for aws:role/1/etl", Explanation: "why", Technique: "T1",
		EventIDs: []string{"ev-1"}, FirstSeen: at, LastSeen: at,
		Analysis: schemas.Analysis{Pattern: schemas.PatternRare, Observed: "obs", Baseline: "base"},
	}
	if f.ID != want.ID || f.Severity != want.Severity || f.Score != want.Score || f.Title != want.Title ||
		f.Detector != want.Detector || f.Identity != want.Identity || f.Explanation != want.Explanation ||
		f.Technique != want.Technique || len(f.EventIDs) != 1 || f.EventIDs[0] != "ev-1" ||
		!f.FirstSeen.Equal(at.Time) || !f.LastSeen.Equal(at.Time) || f.Analysis != want.Analysis {
		t.Fatalf("got  %+v\nwant %+v", f, want)
	}
}
