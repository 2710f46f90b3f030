package kafkasrc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
)

// TestSecuredCluster writes and consumes through a broker that requires
// TLS and SASL, with each mechanism, and shows a wrong password refused.
func TestSecuredCluster(t *testing.T) {
	cert := securetest.SelfSigned(t)
	clientTLS, err := secure.TLS{Enabled: true, CAFile: cert.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{kafkasrc.SASLPlain, kafkasrc.SASLScramSHA256, kafkasrc.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"), kfake.TLS(cert.Server),
				kfake.EnableSASL(), kfake.Superuser(mech, "nhi", "right"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			good := kafkasrc.Cluster{Brokers: c.ListenAddrs(), TLS: clientTLS, SASL: kafkasrc.SASL{Mechanism: mech, Username: "nhi", Password: "right"}}
			if err := kafkasrc.CheckTopics(ctx, good, "in"); err != nil {
				t.Fatalf("check topics: %v", err)
			}
			w, err := good.Writer("in")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v1")}, kafka.Message{Key: []byte("k"), Value: []byte("v2")}); err != nil {
				t.Fatalf("write: %v", err)
			}
			src, err := kafkasrc.New(kafkasrc.Config{Cluster: good, GroupID: "g", Topics: []string{"in"}, StartFirst: true}, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var got []string
			for len(got) < 2 {
				batch, err := src.Fetch(ctx)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				for _, r := range batch {
					got = append(got, string(r.Value))
				}
				if err := src.Commit(ctx, batch); err != nil {
					t.Fatalf("commit: %v", err)
				}
			}
			if strings.Join(got, ",") != "v1,v2" {
				t.Fatalf("consumed %v", got)
			}
			bad := good
			bad.SASL.Password = "wrong"
			short, cancel2 := context.WithTimeout(ctx, 5*time.Second)
			defer cancel2()
			if err := bad.Ping(short); err == nil {
				t.Fatal("a wrong password was accepted")
			}
			plain := kafkasrc.Cluster{Brokers: c.ListenAddrs()}
			if err := plain.Ping(short); err == nil {
				t.Fatal("a client without TLS and SASL was accepted")
			}
		})
	}
}

func TestUnknownMechanism(t *testing.T) {
	if err := (kafkasrc.SASL{Mechanism: "GSSAPI"}).Validate(); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Fatalf("got %v", err)
	}
}
