package outputs

import (
	"fmt"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Config lists the outputs and how the Forwarders feed them. This is the
// one place where output kinds are registered.
type Config struct {
	// MaxLag is how many findings an output may be behind before detection
	// waits for it (backpressure); 0 never waits and lets the findings
	// topic's retention be the only bound.
	MaxLag int64 `yaml:"max_lag"`
	// BatchSize caps the findings of one delivery; Linger is how long a
	// Forwarder waits for more after the first.
	BatchSize int           `yaml:"batch_size"`
	Linger    time.Duration `yaml:"linger"`
	Splunk    []Splunk      `yaml:"splunk"`
	Syslog    []Syslog      `yaml:"syslog"`
	Webhooks  []Webhook     `yaml:"webhooks"`
}

// DefaultConfig has no outputs; the Kafka findings topic and ClickHouse
// always receive findings.
func DefaultConfig() Config {
	return Config{BatchSize: 500, Linger: 200 * time.Millisecond}
}

// Filter selects the findings an output receives.
type Filter struct {
	// MinSeverity drops findings below it (info, low, medium, high,
	// critical); empty sends all.
	MinSeverity string `yaml:"min_severity"`
}

// Splunk, Syslog and Webhook are one configured output each: its settings
// and its filter.
type (
	Splunk struct {
		SplunkConfig `yaml:",inline"`
		Filter       `yaml:",inline"`
	}
	Syslog struct {
		SyslogConfig `yaml:",inline"`
		Filter       `yaml:",inline"`
	}
	Webhook struct {
		WebhookConfig `yaml:",inline"`
		Filter        `yaml:",inline"`
	}
)

// Configured is an opened output with the severity it starts at.
type Configured struct {
	Output      Output
	MinSeverity schemas.Severity
}

type entry struct {
	field  string
	filter Filter
	check  func(field string) []error
	open   func() (Output, error)
}

func (c Config) entries(field string) []entry {
	var es []entry
	for i, o := range c.Splunk {
		es = append(es, entry{fmt.Sprintf("%s.splunk[%d]", field, i), o.Filter, o.SplunkConfig.Validate,
			func() (Output, error) { return NewSplunk(o.SplunkConfig) }})
	}
	for i, o := range c.Syslog {
		es = append(es, entry{fmt.Sprintf("%s.syslog[%d]", field, i), o.Filter, o.SyslogConfig.Validate,
			func() (Output, error) { return NewSyslog(o.SyslogConfig) }})
	}
	for i, o := range c.Webhooks {
		es = append(es, entry{fmt.Sprintf("%s.webhooks[%d]", field, i), o.Filter, o.WebhookConfig.Validate,
			func() (Output, error) { return NewWebhook(o.WebhookConfig) }})
	}
	return es
}

// Validate lists every problem, each named by its YAML path under field.
// It opens each valid output once (no connection is made) to check that
// names are unique, because names key consumer groups and metrics.
func (c Config) Validate(field string) []error {
	var errs []error
	if c.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("%s.max_lag: must not be negative", field))
	}
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("%s.batch_size: must be positive", field))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("%s.linger: must not be negative", field))
	}
	names := map[string]string{}
	for _, e := range c.entries(field) {
		bad := e.check(e.field)
		if s := e.filter.MinSeverity; s != "" {
			if _, ok := schemas.ParseSeverity(s); !ok {
				bad = append(bad, fmt.Errorf("%s.min_severity: unknown severity %q", e.field, s))
			}
		}
		errs = append(errs, bad...)
		if len(bad) > 0 {
			continue
		}
		o, err := e.open()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.field, err))
			continue
		}
		if prev, ok := names[o.Name()]; ok {
			errs = append(errs, fmt.Errorf("%s.name: %q is also the name of %s; names must be unique", e.field, o.Name(), prev))
		}
		names[o.Name()] = e.field
		o.Close()
	}
	return errs
}

// Open opens every configured output. Connections are made on first
// delivery, so an unreachable destination does not stop the service.
func (c Config) Open() ([]Configured, error) {
	var outs []Configured
	for _, e := range c.entries("outputs") {
		o, err := e.open()
		if err != nil {
			for _, prev := range outs {
				prev.Output.Close()
			}
			return nil, fmt.Errorf("%s: %w", e.field, err)
		}
		sev, _ := schemas.ParseSeverity(e.filter.MinSeverity)
		outs = append(outs, Configured{Output: o, MinSeverity: sev})
	}
	return outs, nil
}
