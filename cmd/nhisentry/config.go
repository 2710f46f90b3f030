package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/detectors/builtin"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/outputs"
)

// Config is the whole configuration file. Every field has a default, and
// environment variables (listed in envOverrides) override the file.
type Config struct {
	Kafka      KafkaConfig    `yaml:"kafka"`
	ClickHouse chstore.Config `yaml:"clickhouse"`
	Baseline   BaselineConfig `yaml:"baseline"`
	Detect     DetectConfig   `yaml:"detect"`
	Outputs    outputs.Config `yaml:"outputs"`
	Respond    RespondConfig  `yaml:"respond"`
	Pipeline   PipelineConfig `yaml:"pipeline"`
	HTTP       HTTPConfig     `yaml:"http"`
	Log        LogConfig      `yaml:"log"`
}

// KafkaConfig says where records come from and where results go.
type KafkaConfig struct {
	Brokers         []string      `yaml:"brokers"`
	GroupID         string        `yaml:"group_id"`
	Inputs          []InputConfig `yaml:"inputs"`
	FindingsTopic   string        `yaml:"findings_topic"`
	DeadLetterTopic string        `yaml:"dead_letter_topic"`
	// RepartitionTopic, when set, scales detection out: decoded events go
	// to this topic keyed by identity and are detected by the member of
	// group <group_id>.detect that holds the identity's partition.
	RepartitionTopic string `yaml:"repartition_topic"`
	// LinksTopic carries every credential issuance to every instance, so a
	// credential issued where one instance reads is resolved where another
	// reads its use. Required with RepartitionTopic; make it compacted.
	LinksTopic string `yaml:"links_topic"`
	// StartFrom is where a new consumer group starts: earliest or latest.
	StartFrom string        `yaml:"start_from"`
	BatchSize int           `yaml:"batch_size"`
	Linger    time.Duration `yaml:"linger"`
	TLS       secure.TLS    `yaml:"tls"`
	SASL      SASLConfig    `yaml:"sasl"`
}

// SASLConfig authenticates to Kafka; an empty mechanism means none.
type SASLConfig struct {
	Mechanism string        `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string        `yaml:"username"`
	Password  secure.Secret `yaml:"password"`
}

// cluster resolves the Kafka settings, reading secrets and TLS files.
func (k KafkaConfig) cluster() (kafkasrc.Cluster, error) {
	c := kafkasrc.Cluster{Brokers: k.Brokers, SASL: kafkasrc.SASL{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username}}
	var err error
	if c.TLS, err = k.TLS.Config(); err != nil {
		return c, fmt.Errorf("kafka.tls: %w", err)
	}
	if k.SASL.Mechanism != "" {
		if c.SASL.Password, err = k.SASL.Password.Value(); err != nil {
			return c, fmt.Errorf("kafka.sasl.password: %w", err)
		}
	}
	return c, nil
}

// InputConfig names an input topic and the format of its records.
type InputConfig struct {
	Topic  string `yaml:"topic"`
	Format string `yaml:"format"`
}

// BaselineConfig sets how baselines are built, cached and kept.
type BaselineConfig struct {
	// Classes give each kind of identity its learning and dormancy windows;
	// the first matching class applies.
	Classes baseline.Classes `yaml:"classes"`
	// CacheBudget bounds the processor's baseline cache, in bytes.
	CacheBudget int64                   `yaml:"cache_budget_bytes"`
	Rebuild     baseline.RebuildOptions `yaml:"rebuild"`
	Retention   RetentionConfig         `yaml:"retention"`
}

// RetentionConfig is how long each kind of stored data is kept; whole
// months are dropped once entirely older. Zero keeps forever.
type RetentionConfig struct {
	Events   time.Duration `yaml:"events"`
	Rollups  time.Duration `yaml:"rollups"`
	Findings time.Duration `yaml:"findings"`
	Audit    time.Duration `yaml:"audit"`
}

// DetectConfig tunes the detectors and names the rule files.
type DetectConfig struct {
	// The built-in detectors, one key each (new_value, volume, …, disabled).
	Builtin builtin.Config `yaml:",inline"`
	Rules   []string       `yaml:"rules"`
	// RuleCostLimit bounds each CEL evaluation; 0 uses the engine default.
	RuleCostLimit uint64 `yaml:"rule_cost_limit"`
}

// PipelineConfig bounds the processing loop.
type PipelineConfig struct {
	MaxRecordBytes int           `yaml:"max_record_bytes"`
	DrainTimeout   time.Duration `yaml:"drain_timeout"`
}

// HTTPConfig is the metrics and health endpoint.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// LogConfig sets the structured log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

func defaultConfig() Config {
	return Config{
		Kafka: KafkaConfig{
			GroupID: "nhisentry", FindingsTopic: "nhi.findings", DeadLetterTopic: "nhi.deadletter",
			StartFrom: "earliest", BatchSize: 5000, Linger: 50 * time.Millisecond,
		},
		ClickHouse: chstore.Config{Addr: "127.0.0.1:19000", Database: "nhisentry", Username: "default", DialTimeout: 5 * time.Second},
		Baseline: BaselineConfig{
			Classes:     baseline.DefaultClasses(),
			CacheBudget: baseline.DefaultBudget,
			Rebuild: baseline.RebuildOptions{Every: 15 * time.Minute, History: 35 * 24 * time.Hour, Chunk: 1000,
				MaxValues: baseline.MaxKnown},
			Retention: RetentionConfig{Events: 90 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour, Findings: 400 * 24 * time.Hour},
		},
		Detect: DetectConfig{
			Builtin: builtin.DefaultConfig(),
		},
		Outputs:  outputs.DefaultConfig(),
		Respond:  RespondConfig{Policy: response.DefaultPolicy()},
		Pipeline: PipelineConfig{MaxRecordBytes: 1 << 20, DrainTimeout: 30 * time.Second},
		HTTP:     HTTPConfig{Listen: "127.0.0.1:9464"},
		Log:      LogConfig{Level: "info", Format: "text"},
	}
}

// envOverrides maps environment variables onto configuration fields. Secrets
// belong here or in *_FILE variables, never in the file.
var envOverrides = []struct {
	name string
	set  func(*Config, string) error
}{
	{"NHI_KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = strings.Split(v, ","); return nil }},
	{"NHI_KAFKA_GROUP_ID", func(c *Config, v string) error { c.Kafka.GroupID = v; return nil }},
	{"NHI_KAFKA_REPARTITION_TOPIC", func(c *Config, v string) error { c.Kafka.RepartitionTopic = v; return nil }},
	{"NHI_KAFKA_LINKS_TOPIC", func(c *Config, v string) error { c.Kafka.LinksTopic = v; return nil }},
	{"NHI_CLICKHOUSE_ADDR", func(c *Config, v string) error { c.ClickHouse.Addr = v; return nil }},
	{"NHI_CLICKHOUSE_DATABASE", func(c *Config, v string) error { c.ClickHouse.Database = v; return nil }},
	{"NHI_CLICKHOUSE_USERNAME", func(c *Config, v string) error { c.ClickHouse.Username = v; return nil }},
	{"NHI_CLICKHOUSE_PASSWORD", func(c *Config, _ string) error {
		c.ClickHouse.Password = secure.Secret{Env: "NHI_CLICKHOUSE_PASSWORD"}
		return nil
	}},
	{"NHI_CLICKHOUSE_PASSWORD_FILE", func(c *Config, v string) error { c.ClickHouse.Password = secure.Secret{File: v}; return nil }},
	{"NHI_KAFKA_SASL_MECHANISM", func(c *Config, v string) error { c.Kafka.SASL.Mechanism = v; return nil }},
	{"NHI_KAFKA_SASL_USERNAME", func(c *Config, v string) error { c.Kafka.SASL.Username = v; return nil }},
	{"NHI_KAFKA_SASL_PASSWORD", func(c *Config, _ string) error {
		c.Kafka.SASL.Password = secure.Secret{Env: "NHI_KAFKA_SASL_PASSWORD"}
		return nil
	}},
	{"NHI_KAFKA_SASL_PASSWORD_FILE", func(c *Config, v string) error { c.Kafka.SASL.Password = secure.Secret{File: v}; return nil }},
	{"NHI_HTTP_LISTEN", func(c *Config, v string) error { c.HTTP.Listen = v; return nil }},
	{"NHI_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
}

// loadConfig reads path, applies the environment and validates everything,
// returning every problem at once.
func loadConfig(path string) (Config, error) {
	cfg, errs := readConfig(path)
	errs = append(errs, cfg.validate()...)
	return cfg, configErrors(path, errs)
}

// readConfig reads path ("" means defaults only) and applies the environment
// without validating.
func readConfig(path string) (Config, []error) {
	cfg := defaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, []error{err}
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, []error{err}
		}
	}
	var errs []error
	for _, o := range envOverrides {
		if v, ok := os.LookupEnv(o.name); ok {
			if err := o.set(&cfg, v); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return cfg, errs
}

func configErrors(path string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration%s:\n%w", inFile(path), errors.Join(errs...))
}

func inFile(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// validate lists every problem, each named by its YAML path.
func (c *Config) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker address is required")
	}
	if c.Kafka.GroupID == "" {
		bad("kafka.group_id", "required")
	}
	if len(c.Kafka.Inputs) == 0 {
		bad("kafka.inputs", "at least one input topic is required")
	}
	seen := map[string]bool{}
	for i, in := range c.Kafka.Inputs {
		field := fmt.Sprintf("kafka.inputs[%d]", i)
		if in.Topic == "" {
			bad(field+".topic", "required")
		} else if seen[in.Topic] {
			bad(field+".topic", "topic %q is listed twice", in.Topic)
		}
		seen[in.Topic] = true
		if _, err := formats.ByName(in.Format); err != nil {
			bad(field+".format", "%v", err)
		}
	}
	for _, t := range []struct {
		field, topic string
		required     bool
		when         string
	}{
		{"kafka.findings_topic", c.Kafka.FindingsTopic, true, ""},
		{"kafka.dead_letter_topic", c.Kafka.DeadLetterTopic, true, ""},
		{"kafka.repartition_topic", c.Kafka.RepartitionTopic, false, ""},
		{"kafka.links_topic", c.Kafka.LinksTopic, c.Kafka.RepartitionTopic != "", " with kafka.repartition_topic"},
	} {
		switch {
		case t.topic == "" && t.required:
			bad(t.field, "required%s", t.when)
		case t.topic != "" && seen[t.topic]:
			bad(t.field, "topic %q is also an input or another of these topics", t.topic)
		}
		if t.topic != "" {
			seen[t.topic] = true
		}
	}
	if c.Kafka.LinksTopic != "" && c.Kafka.RepartitionTopic == "" {
		bad("kafka.links_topic", "only used with kafka.repartition_topic")
	}
	if c.Kafka.StartFrom != "earliest" && c.Kafka.StartFrom != "latest" {
		bad("kafka.start_from", "want earliest or latest, got %q", c.Kafka.StartFrom)
	}
	if c.Kafka.BatchSize <= 0 {
		bad("kafka.batch_size", "must be positive")
	}
	errs = append(errs, c.Kafka.TLS.Validate("kafka.tls")...)
	if err := (kafkasrc.SASL{Mechanism: c.Kafka.SASL.Mechanism}).Validate(); err != nil {
		bad("kafka.sasl.mechanism", "%v", err)
	} else if c.Kafka.SASL.Mechanism != "" {
		if c.Kafka.SASL.Username == "" {
			bad("kafka.sasl.username", "required with a SASL mechanism")
		}
		errs = append(errs, c.Kafka.SASL.Password.Validate("kafka.sasl.password", true)...)
	}
	if c.ClickHouse.Addr == "" {
		bad("clickhouse.addr", "required")
	}
	if c.ClickHouse.Database == "" {
		bad("clickhouse.database", "required")
	}
	errs = append(errs, c.ClickHouse.TLS.Validate("clickhouse.tls")...)
	errs = append(errs, c.ClickHouse.Password.Validate("clickhouse.password", false)...)
	for _, err := range c.Baseline.Classes.Validate() {
		bad("baseline", "%v", err)
	}
	if c.Baseline.CacheBudget <= 0 {
		bad("baseline.cache_budget_bytes", "must be positive")
	}
	for _, err := range c.Baseline.Rebuild.Validate() {
		bad("baseline", "%v", err)
	}
	r := c.Baseline.Retention
	if r.Events < 0 || r.Rollups < 0 || r.Findings < 0 || r.Audit < 0 {
		bad("baseline.retention", "durations must not be negative")
	}
	if r.Rollups > 0 && r.Rollups < c.Baseline.Rebuild.History {
		bad("baseline.retention.rollups", "%v is shorter than the history the builder reads (%v)", r.Rollups, c.Baseline.Rebuild.History)
	}
	errs = append(errs, c.Detect.Builtin.Validate("detect.")...)
	for i, r := range c.Detect.Rules {
		if _, err := os.Stat(r); err != nil {
			bad(fmt.Sprintf("detect.rules[%d]", i), "%v", err)
		}
	}
	errs = append(errs, c.Outputs.Validate("outputs")...)
	errs = append(errs, c.Respond.validate()...)
	if c.Respond.Enabled && (c.Respond.Topic == c.Kafka.FindingsTopic || seen[c.Respond.Topic]) {
		bad("respond.topic", "topic %q is also an input or the findings topic", c.Respond.Topic)
	}
	if c.Pipeline.MaxRecordBytes <= 0 {
		bad("pipeline.max_record_bytes", "must be positive")
	}
	if c.Log.Level != "" {
		if _, err := parseLevel(c.Log.Level); err != nil {
			bad("log.level", "%v", err)
		}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	return errs
}
