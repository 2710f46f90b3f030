package kafkasrc

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kgo"
	kplain "github.com/twmb/franz-go/pkg/sasl/plain"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

// Cluster is how every Kafka client of the service reaches the brokers:
// addresses, TLS and SASL. The zero TLS and SASL mean plain text without
// authentication.
type Cluster struct {
	Brokers []string
	TLS     *tls.Config
	SASL    SASL
}

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL is a SASL mechanism with its credentials; an empty Mechanism means
// none.
type SASL struct {
	Mechanism, Username, Password string
}

// mechanism returns kafka-go's mechanism, or nil for none.
func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, s.Password)
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (want %s, %s or %s)", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}

// Validate checks the SASL settings.
func (s SASL) Validate() error {
	_, err := s.mechanism()
	return err
}

// dialer is for kafka-go readers.
func (c Cluster) dialer() (*kafka.Dialer, error) {
	m, err := c.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: m}, nil
}

// transport is for kafka-go writers and admin clients.
func (c Cluster) transport() (*kafka.Transport, error) {
	m, err := c.SASL.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: c.TLS, SASL: m, Dial: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}, nil
}

// Client is a kafka-go admin client for the cluster.
func (c Cluster) Client() (*kafka.Client, error) {
	t, err := c.transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Transport: t, Timeout: 10 * time.Second}, nil
}

// franz returns a franz-go client for the cluster with extra options.
func (c Cluster) franz(extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, extra...)
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	switch c.SASL.Mechanism {
	case "":
	case SASLPlain:
		opts = append(opts, kgo.SASL(kplain.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(kscram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(kscram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha512Mechanism()))
	default:
		return nil, c.SASL.Validate()
	}
	return kgo.NewClient(opts...)
}

// Writer is a synchronous writer to topic that waits for all in-sync
// replicas, so a returned write is durable before the input batch is
// committed. Messages with the same key go to the same partition. A
// request to one partition stays under the brokers' default
// message.max.bytes (MaxRequestBytes); a single larger message is refused
// by the writer (see DeadLetters for records that may be that large).
func (c Cluster) Writer(topic string) (*kafka.Writer, error) {
	t, err := c.transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    10000,
		BatchBytes:   MaxRequestBytes,
		BatchTimeout: 5 * time.Millisecond,
		Transport:    t,
	}, nil
}

// MaxRequestBytes is the size of a produce request to one partition that
// every broker accepts by default (Kafka's message.max.bytes, 1 MiB).
const MaxRequestBytes = 1 << 20

// Ping checks that the cluster answers metadata requests with these
// credentials.
func (c Cluster) Ping(ctx context.Context) error {
	cl, err := c.franz()
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Ping(ctx)
}
