package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/engine"
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

func TestHandleStoresFindingsFirstAndSuppressesRepeats(t *testing.T) {
	var order []string
	sink := &recorder{name: "sink", log: &order, failures: 2}
	store := &recorder{name: "store", log: &order}
	e := engine.New(engine.Options{
		Cache: baseline.NewCache(), Detectors: []detectors.Detector{everyEvent{}},
		Events: store, Sinks: []engine.FindingSink{sink},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryBackoff: time.Millisecond,
	})
	now := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	batch := []schemas.Event{
		detectortest.Event(now, "a", "10.0.0.1"),
		detectortest.Event(now.Add(time.Second), "b", "10.0.0.1"),
	}
	for range 2 {
		if err := e.Handle(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.findings) != 1 {
		t.Errorf("sink got %d findings, want the repeat suppressed to 1", len(sink.findings))
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
		Cache: baseline.NewCache(), Detectors: []detectors.Detector{everyEvent{}},
		Events: &recorder{log: &order}, Sinks: []engine.FindingSink{sink},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryBackoff: time.Millisecond,
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
