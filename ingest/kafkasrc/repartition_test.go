package kafkasrc_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

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

// TestLinksReachEveryInstance writes one batch with a credential issuance
// through the Repartitioner of one instance: the linkers of two instances
// following the links topic both resolve the credential, and only the
// issuance goes to the links topic.
func TestLinksReachEveryInstance(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "nhi.events", "nhi.links"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cluster := kafkasrc.Cluster{Brokers: c.ListenAddrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	rp, err := kafkasrc.NewRepartitioner(cluster, "nhi.events", "nhi.links", ingest.Backoff{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	at := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	issued := schemas.Event{
		ID: "vault-1", Time: schemas.At(at), Identity: schemas.Identity{ID: "vault:approle/billing", Kind: schemas.KindWorkload},
		Issuance: &schemas.Issuance{Credential: "vault:accessor/abc", Subject: "vault:approle/billing", TTLSeconds: 3600},
	}
	used := schemas.Event{ID: "vault-2", Time: schemas.At(at.Add(time.Minute)), Identity: schemas.Identity{ID: "vault:approle/billing"}}
	if err := rp.Handle(ctx, []schemas.Event{issued, used}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	linkers := []*ingest.Linker{ingest.NewLinker(0), ingest.NewLinker(0)}
	follow, stop := context.WithCancel(ctx)
	counts := make([]int, len(linkers))
	for i, l := range linkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := kafkasrc.FollowLinks(follow, cluster, "nhi.links", log, func(ev *schemas.Event) {
				counts[i]++
				if k, ok := ingest.LinkOf(ev); ok {
					l.Add(k)
				}
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for _, l := range linkers {
		for l.Len() == 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		k, ok := l.Lookup("vault:accessor/abc")
		want := ingest.Link{Credential: "vault:accessor/abc", Identity: issued.Identity, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}
		if !ok || !reflect.DeepEqual(k, want) {
			t.Errorf("link %+v, %v; want %+v", k, ok, want)
		}
	}
	stop()
	wg.Wait()
	for i, n := range counts {
		if n != 1 {
			t.Errorf("instance %d read %d records from the links topic, want only the issuance", i, n)
		}
	}
}

// TestRepartitionerStaysUnderTheBrokersMessageLimit writes a batch of
// several megabytes: the writer must split it into requests the broker's
// default message.max.bytes (1 MiB) accepts.
func TestRepartitionerStaysUnderTheBrokersMessageLimit(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "nhi.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rp, err := kafkasrc.NewRepartitioner(kafkasrc.Cluster{Brokers: c.ListenAddrs()}, "nhi.events", "", ingest.Backoff{First: time.Millisecond, Max: time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	evs := make([]schemas.Event, 8000)
	for i := range evs {
		evs[i] = schemas.Event{ID: fmt.Sprintf("ev-%d", i), Identity: schemas.Identity{ID: "spiffe://t/ns/a/sa/b"}, Action: strings.Repeat("x", 1000)}
	}
	short, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := rp.Handle(short, evs); err != nil {
		t.Fatalf("8 MB of events to one partition: %v", err)
	}
}
