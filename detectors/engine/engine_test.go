package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// recorder is a store and a sink that records the order of writes and can
// fail a number of times first.
type recorder struct {
	name     string
	log      *[]string
	failures int
	findings []schemas.Finding
	events   int
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) WriteFindings(_ context.Context, f []schemas.Finding) error {
	if r.failures > 0 {
		r.failures--
		return errors.New("down")
	}
	*r.log = append(*r.log, "findings:"+r.name)
	r.findings = append(r.findings, f...)
	return nil
}

func (r *recorder) WriteEvents(_ context.Context, e []schemas.Event) error {
	*r.log = append(*r.log, "events")
	r.events += len(e)
	return nil
}

// everyEvent raises the same finding id for every event of an identity-hour,
// as a rule matching a whole burst does.
type everyEvent struct{}

func (everyEvent) Name() string { return "every" }
func (everyEvent) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	return append(dst, schemas.Finding{ID: schemas.FindingID("every", in.Event.Identity.ID), Detector: "every", Identity: in.Event.Identity})
}

func TestHandleStoresFindingsFirstAndMergesRepeats(t *testing.T) {
	var order []string
	sink := &recorder{name: "sink", log: &order, failures: 2}
	store := &recorder{name: "store", log: &order}
	e := engine.New(engine.Options{
		Cache: baseline.NewCache(baseline.CacheOptions{}), Detectors: []detectors.Detector{everyEvent{}},
		Events: store, Sinks: []engine.FindingSink{sink},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Backoff: ingest.Backoff{First: time.Millisecond, Max: time.Millisecond},
	})
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	for i := range 2 {
		at := now.Add(time.Duration(i) * time.Minute)
		batch := []schemas.Event{
			detectortest.Event(at, "a", "10.0.0.1"),
			detectortest.Event(at.Add(time.Second), "b", "10.0.0.1"),
		}
		if err := e.Handle(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	// Each batch sends the finding once: the first with the batch's two
	// repeats merged (count 2), the second as revision 1 with count 4.
	if len(sink.findings) != 2 {
		t.Fatalf("sink got %d findings, want one per batch", len(sink.findings))
	}
	first, second := sink.findings[0], sink.findings[1]
	if first.ID != second.ID || first.Count != 2 || first.Revision != 0 || second.Count != 4 || second.Revision != 1 ||
		!second.FirstSeen.Equal(first.FirstSeen.Time) {
		t.Errorf("first %+v\nsecond %+v", first, second)
	}
	want := []string{"findings:sink", "events", "findings:sink", "events"}
	if len(order) != len(want) {
		t.Fatalf("write order %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("write order %v, want %v", order, want)
		}
	}
	if store.events != 4 {
		t.Errorf("stored %d events, want 4", store.events)
	}
}

func TestHandleGivesUpWhenContextEnds(t *testing.T) {
	var order []string
	sink := &recorder{name: "sink", log: &order, failures: 1 << 30}
	e := engine.New(engine.Options{
		Cache: baseline.NewCache(baseline.CacheOptions{}), Detectors: []detectors.Detector{everyEvent{}},
		Events: &recorder{log: &order}, Sinks: []engine.FindingSink{sink},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Backoff: ingest.Backoff{First: time.Millisecond, Max: time.Millisecond},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := e.Handle(ctx, []schemas.Event{detectortest.Event(time.Now(), "a", "10.0.0.1")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
	if len(order) != 0 {
		t.Fatalf("events stored although findings were not: %v", order)
	}
}

// countEvents raises one finding per event with a distinct id, so the
// number of findings is the number of events detected.
type countEvents struct{}

func (countEvents) Name() string { return "count" }
func (countEvents) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	return append(dst, schemas.Finding{ID: in.Event.ID, Detector: "count", Identity: in.Event.Identity})
}

func TestRedeliveredRecordsAreNotLearnedTwice(t *testing.T) {
	cache := baseline.NewCache(baseline.CacheOptions{})
	e := engine.New(engine.Options{Cache: cache, Detectors: []detectors.Detector{countEvents{}}})
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	at := func(offset int64, id string) schemas.Event {
		ev := detectortest.Event(now.Add(time.Duration(offset)*time.Second), "a", "10.0.0.1")
		ev.ID = id
		ev.Provenance = schemas.Provenance{Topic: "t", Partition: 0, Offset: offset}
		return ev
	}
	// Offset 1 is a file of two records: both events share the offset.
	first := []schemas.Event{at(0, "a"), at(1, "b1"), at(1, "b2")}
	if got := len(e.Detect(first)); got != 3 {
		t.Fatalf("first batch: %d detected, want 3", got)
	}
	// A rebalance redelivers offsets 1 and 2 before offset 3 is new.
	again := []schemas.Event{at(1, "b1"), at(1, "b2"), at(2, "c"), at(3, "d")}
	cache.Lock()
	before := cache.Get(detectortest.Identity).Events
	cache.Unlock()
	if got := len(e.Detect(again)); got != 2 {
		t.Fatalf("redelivered batch: %d detected, want 2 (offsets 2 and 3)", got)
	}
	cache.Lock()
	if n := cache.Get(detectortest.Identity).Events - before; n != 2 {
		t.Fatalf("baseline learned %d events from the redelivery, want 2", n)
	}
	cache.Unlock()
	// Through the repartition topic, events of one input partition arrive
	// out of offset order: a new event behind a learned offset is new.
	if got := len(e.Detect([]schemas.Event{at(0, "late")})); got != 1 {
		t.Fatalf("a new event at an old offset: %d detected, want 1", got)
	}
}

func TestDetectionLatencyIsMeasuredPerFamily(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	var order []string
	e := engine.New(engine.Options{
		Cache: baseline.NewCache(baseline.CacheOptions{}), Detectors: []detectors.Detector{countEvents{}},
		Events: &recorder{log: &order}, Sinks: []engine.FindingSink{&recorder{name: "sink", log: &order}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
		Now: func() time.Time { return now },
	})
	ev := detectortest.Event(now.Add(-3*time.Second), "a", "10.0.0.1")
	ev.Source.Family = schemas.FamilyCloudAudit
	if err := e.Handle(context.Background(), []schemas.Event{ev}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nhi_detect_latency_seconds" {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetLabel()[0].GetValue() != "cloud_audit" || m.GetHistogram().GetSampleCount() != 1 || m.GetHistogram().GetSampleSum() != 3 {
			t.Fatalf("latency metric %v", m)
		}
		return
	}
	t.Fatal("no nhi_detect_latency_seconds metric")
}

// sameKey raises one finding id per identity with the event as evidence.
type sameKey struct{}

func (sameKey) Name() string { return "same" }
func (sameKey) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	return append(dst, schemas.Finding{
		ID: schemas.FindingID("same", in.Event.Identity.ID), Detector: "same", Identity: in.Event.Identity,
		EventIDs: []string{in.Event.ID}, FirstSeen: in.Event.Time, LastSeen: in.Event.Time,
	})
}

func TestRepeatsInABatchMergeWithCountAndEvidence(t *testing.T) {
	e := engine.New(engine.Options{Cache: baseline.NewCache(baseline.CacheOptions{}), Detectors: []detectors.Detector{sameKey{}}})
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	var batch []schemas.Event
	for i := range 15 {
		batch = append(batch, detectortest.Event(now.Add(time.Duration(i)*time.Minute), fmt.Sprintf("a%d", i), "10.0.0.1"))
	}
	got := e.Detect(batch)
	if len(got) != 1 {
		t.Fatalf("%d findings, want the 15 repeats merged into 1", len(got))
	}
	f := got[0]
	if f.Count != 15 || f.Revision != 0 || len(f.EventIDs) != 10 || f.EventIDs[0] != batch[0].ID ||
		!f.FirstSeen.Equal(now) || !f.LastSeen.Equal(now.Add(14*time.Minute)) {
		t.Errorf("merged finding %+v", f)
	}
}

// sentList is a SentFindings over a fixed list.
type sentList []engine.Sent

func (l sentList) SentFindings(_ context.Context, _ time.Time, fn func(engine.Sent)) error {
	for _, f := range l {
		fn(f)
	}
	return nil
}

func TestRecallContinuesRevisionsAfterAHandover(t *testing.T) {
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	ev := detectortest.Event(now, "a", "10.0.0.1")
	id := schemas.FindingID("same", ev.Identity.ID)
	for _, tt := range []struct {
		name            string
		owns            bool
		recalled        int
		count, revision int
	}{
		{"owned: the next delivery is revision 3", true, 1, 5, 3},
		{"another instance's identity is not recalled", false, 0, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.New(engine.Options{Cache: baseline.NewCache(baseline.CacheOptions{}), Detectors: []detectors.Detector{sameKey{}}})
			stored := sentList{{ID: id, Identity: ev.Identity.ID, Count: 4, Revision: 2, FirstSeen: now.Add(-time.Hour)}}
			n, err := e.Recall(context.Background(), stored, now.Add(-24*time.Hour), func(string) bool { return tt.owns })
			if err != nil || n != tt.recalled {
				t.Fatalf("recalled %d, %v; want %d", n, err, tt.recalled)
			}
			got := e.Detect([]schemas.Event{ev})
			if len(got) != 1 || got[0].Count != tt.count || got[0].Revision != tt.revision {
				t.Fatalf("got %+v, want count %d revision %d", got, tt.count, tt.revision)
			}
			if tt.owns && !got[0].FirstSeen.Equal(now.Add(-time.Hour)) {
				t.Errorf("first seen %v, want the stored one", got[0].FirstSeen)
			}
		})
	}
}
