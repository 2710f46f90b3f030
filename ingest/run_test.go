package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// oneBatch delivers one batch, then blocks until ctx ends.
type oneBatch struct {
	batch     []ingest.Record
	fetched   bool
	committed []ingest.Record
}

func (s *oneBatch) Fetch(ctx context.Context) ([]ingest.Record, error) {
	if !s.fetched {
		s.fetched = true
		return s.batch, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *oneBatch) Commit(_ context.Context, b []ingest.Record) error {
	s.committed = append(s.committed, b...)
	return nil
}

// upper decodes a record "ok" into one event and anything else into an error.
type upper struct{}

func (upper) Format() string { return "test" }
func (upper) Decode(dst []schemas.Event, r ingest.Record) ([]schemas.Event, error) {
	if string(r.Value) != "ok" {
		return dst, ingest.Errorf("test", ingest.ReasonInvalidJSON, "not ok")
	}
	return append(dst, schemas.Event{ID: "e"}), nil
}

type letters struct {
	failures int
	got      []ingest.DeadLetter
}

func (l *letters) WriteDeadLetters(_ context.Context, d []ingest.DeadLetter) error {
	if l.failures > 0 {
		l.failures--
		return errors.New("broker down")
	}
	l.got = append(l.got, d...)
	return nil
}

type handler struct {
	err    error
	events []schemas.Event
}

func (h *handler) Handle(_ context.Context, e []schemas.Event) error {
	h.events = append(h.events, e...)
	return h.err
}

func TestRun(t *testing.T) {
	batch := []ingest.Record{
		{Topic: "in", Offset: 0, Value: []byte("ok")},
		{Topic: "in", Offset: 1, Value: []byte("{broken")},
		{Topic: "in", Offset: 2, Value: []byte("ok but far too long")},
		{Topic: "other", Offset: 0, Value: []byte("ok")},
	}
	tests := []struct {
		name        string
		handlerErr  error
		dlqFailures int
		wantReasons []string
		wantCommit  bool
	}{
		{name: "decoded, dead-lettered, committed", wantReasons: []string{ingest.ReasonInvalidJSON, ingest.ReasonTooLarge, ingest.ReasonUnknownFormat}, wantCommit: true},
		{name: "dead-letter topic down for a while", dlqFailures: 2, wantReasons: []string{ingest.ReasonInvalidJSON, ingest.ReasonTooLarge, ingest.ReasonUnknownFormat}, wantCommit: true},
		{name: "handler fails: nothing committed", handlerErr: errors.New("clickhouse down"), wantReasons: []string{ingest.ReasonInvalidJSON, ingest.ReasonTooLarge, ingest.ReasonUnknownFormat}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &oneBatch{batch: batch}
			dlq := &letters{failures: tt.dlqFailures}
			h := &handler{err: tt.handlerErr}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := ingest.Run(ctx, ingest.RunOptions{
				Source: src, Decoders: map[string]ingest.Decoder{"in": upper{}}, DeadLetter: dlq, Handler: h,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxRecordBytes: 8,
				Backoff: ingest.Backoff{First: time.Millisecond, Max: time.Millisecond},
				Now:     func() time.Time { return time.Unix(100, 0) },
				OnBatch: func(ingest.Stats) { cancel() },
			})
			if (err != nil) != (tt.handlerErr != nil) {
				t.Fatalf("Run error %v, handler error %v", err, tt.handlerErr)
			}
			if got := len(src.committed) > 0; got != tt.wantCommit {
				t.Fatalf("committed %v, want %v", got, tt.wantCommit)
			}
			if len(dlq.got) != len(tt.wantReasons) {
				t.Fatalf("dead letters %d, want %d", len(dlq.got), len(tt.wantReasons))
			}
			for i, want := range tt.wantReasons {
				if dlq.got[i].Err.Reason != want {
					t.Errorf("dead letter %d: reason %s, want %s", i, dlq.got[i].Err.Reason, want)
				}
			}
			if len(h.events) != 1 || h.events[0].Provenance.Topic != "in" || h.events[0].IngestTime.Unix() != 100 {
				t.Errorf("handler events %+v", h.events)
			}
			if tt.wantCommit && (st.Records != 4 || st.DeadLetters != 3 || st.Events != 1) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// flaky fails its first calls, the way a handler retrying an outage of
// ClickHouse would wait through them.
type flaky struct{ until time.Time }

func (f *flaky) Handle(ctx context.Context, _ []schemas.Event) error {
	for time.Now().Before(f.until) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// A batch waits out an outage longer than the drain timeout while Run is
// not stopped; once stopped, the batch in flight has the drain timeout to
// finish.
func TestRunWaitsOutAnOutageAndDrainsWithinTheTimeout(t *testing.T) {
	const drain = 50 * time.Millisecond
	tests := []struct {
		name    string
		outage  time.Duration
		stop    bool // cancel Run's context while the batch is in flight
		wantErr bool
	}{
		{name: "outage longer than the drain timeout", outage: 6 * drain},
		{name: "stopped during a short outage: drained", outage: drain / 2, stop: true},
		{name: "stopped during a long outage: given up after the drain timeout", outage: time.Hour, stop: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &oneBatch{batch: []ingest.Record{{Topic: "in", Value: []byte("ok")}}}
			h := &flaky{until: time.Now().Add(tt.outage)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.stop {
				cancel()
			}
			start := time.Now()
			_, err := ingest.Run(ctx, ingest.RunOptions{
				Source: src, Decoders: map[string]ingest.Decoder{"in": upper{}}, Handler: h,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainTimeout: drain,
				OnBatch: func(ingest.Stats) { cancel() },
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Run error %v after %s; want error %v", err, time.Since(start), tt.wantErr)
			}
			if committed := len(src.committed) > 0; committed == tt.wantErr {
				t.Errorf("committed %v", committed)
			}
			if tt.wantErr && time.Since(start) > time.Minute {
				t.Errorf("gave up after %s", time.Since(start))
			}
		})
	}
}
