package kafkasrc_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
)

// TestDeadLettersOfEverySizeAreStored writes, in one call, many small
// letters adding up to more than a request the broker accepts and a few
// letters close to that limit: every letter must be stored byte for byte
// with its reason.
func TestDeadLettersOfEverySizeAreStored(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlq, err := kafkasrc.NewDeadLetters(kafkasrc.Cluster{Brokers: c.ListenAddrs()}, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	var letters []ingest.DeadLetter
	for i := range 700 {
		size := 3 << 10
		if i%100 == 0 {
			size = 900 << 10
		}
		value := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		letters = append(letters, ingest.DeadLetter{
			Record: ingest.Record{Topic: "in", Offset: int64(i), Value: value},
			Err:    ingest.Errorf("kong", ingest.ReasonInvalidJSON, "letter %d", i),
		})
	}
	if err := dlq.WriteDeadLetters(ctx, letters); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[int64]bool{}
	for len(got) < len(letters) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var offset int64 = -1
			var reason string
			for _, h := range r.Headers {
				switch h.Key {
				case kafkasrc.HeaderOffset:
					offset, _ = strconv.ParseInt(string(h.Value), 10, 64)
				case kafkasrc.HeaderReason:
					reason = string(h.Value)
				}
			}
			if offset < 0 || offset >= int64(len(letters)) || !bytes.Equal(r.Value, letters[offset].Record.Value) || reason != ingest.ReasonInvalidJSON {
				t.Fatalf("letter at source offset %d differs (reason %q, %d bytes)", offset, reason, len(r.Value))
			}
			got[offset] = true
		})
	}
	if len(got) != len(letters) {
		t.Fatalf("%d of %d letters stored", len(got), len(letters))
	}
}
