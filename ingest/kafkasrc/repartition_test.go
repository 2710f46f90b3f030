package kafkasrc_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestEventsCrossTheRepartitionTopicUnchanged decodes the real-format
// samples of every family, encodes each event as the Repartitioner does and
// decodes it as the detector stage does: the event must come back equal,
// ingest time and provenance included.
func TestEventsCrossTheRepartitionTopicUnchanged(t *testing.T) {
	files, err := filepath.Glob("../*/testdata/*/testdata/*")
	if err != nil || len(files) < 10 {
		t.Fatalf("samples: %d files, %v", len(files), err)
	}
	auto := formats.NewAuto(formats.Builtin())
	total := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var events []schemas.Event
		err = ingest.ReadRecords(f, name, func(rec ingest.Record) error {
			rec.Topic, rec.Partition, rec.Offset = "in", 3, int64(total)
			n := len(events)
			events, _ = auto.Decode(events, rec)
			for i := n; i < len(events); i++ {
				events[i].Provenance = schemas.Provenance{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
			}
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := range events {
			want := events[i]
			b, err := json.Marshal(&want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := kafkasrc.EventDecoder{}.Decode(nil, ingest.Record{Value: b})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(got[0], want) {
				t.Fatalf("%s: event changed across the topic:\n got %+v\nwant %+v", name, got[0], want)
			}
			total++
		}
	}
	if total < 100 {
		t.Fatalf("only %d events from the samples", total)
	}
	t.Logf("%d events from %d files", total, len(files))
}

func TestEventDecoderRefusesWhatIsNotAnEvent(t *testing.T) {
	for _, tt := range []struct{ name, value, reason string }{
		{"not json", `{"id":`, ingest.ReasonInvalidJSON},
		{"no id", `{"identity":{"id":"x"}}`, ingest.ReasonMissingField},
		{"no identity", `{"id":"e1"}`, ingest.ReasonMissingField},
		{"wrong type", `{"id":1}`, ingest.ReasonInvalidJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kafkasrc.EventDecoder{}.Decode(make([]schemas.Event, 1), ingest.Record{Value: []byte(tt.value)})
			de := ingest.AsDecodeError(kafkasrc.FormatEvent, err)
			if err == nil || de.Reason != tt.reason || len(got) != 1 {
				t.Fatalf("got %d events, %v; want reason %s and nothing appended", len(got), err, tt.reason)
			}
		})
	}
}

func FuzzEventDecoder(f *testing.F) {
	f.Add([]byte(`{"id":"e1","identity":{"id":"spiffe://t/ns/a/sa/b","kind":"workload"},"time":"2026-11-09T14:00:00.123456789Z"}`))
	f.Add([]byte(`{"id":"e1","identity":{"id":"x"},"issuance":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := kafkasrc.EventDecoder{}.Decode(nil, ingest.Record{Value: b})
		if err != nil {
			if len(got) != 0 {
				t.Fatal("a refused record appended an event")
			}
			return
		}
		again, err := json.Marshal(&got[0])
		if err != nil {
			t.Fatal(err)
		}
		back, err := kafkasrc.EventDecoder{}.Decode(nil, ingest.Record{Value: again})
		if err != nil || !reflect.DeepEqual(back[0], got[0]) {
			t.Fatalf("re-encoded event does not decode to itself: %v", err)
		}
	})
}
