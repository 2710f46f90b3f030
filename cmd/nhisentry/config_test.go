package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleConfigIsValid(t *testing.T) {
	t.Chdir("../..") // the example names the rule pack relative to the checkout
	cfg, err := loadConfig("deploy/config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Kafka.Inputs) != 4 || cfg.ClickHouse.Database != "nhisentry" {
		t.Fatalf("unexpected config: %+v", cfg)
	}
}

func TestConfigErrorsAreListedTogether(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "everything wrong at once",
			yaml: `
kafka:
  inputs:
    - {topic: a, format: nope}
    - {topic: a, format: kong}
  start_from: middle
  findings_topic: a
  tls: {enabled: true, ca_file: /nonexistent/ca.pem, cert_file: c.pem}
  sasl: {mechanism: SCRAM-SHA-256, password: {env: NHI_TEST_UNSET_PASSWORD}}
clickhouse: {addr: "", password: {file: /nonexistent/pw}}
outputs:
  max_lag: -1
  syslog: [{address: "", min_severity: loud}, {address: "a:1"}, {address: "b:1"}]
detect:
  volume_spike: {z: -1, ratio: 3, min_count: 30, min_hours: 24}
  rules: [missing.yaml]
log: {level: loud}
`,
			want: []string{
				"kafka.brokers: at least one broker",
				`kafka.inputs[0].format: unknown format "nope"`,
				`kafka.inputs[1].topic: topic "a" is listed twice`,
				`kafka.findings_topic: topic "a" is also an input`,
				"kafka.start_from: want earliest or latest",
				"kafka.tls: cert_file and key_file go together",
				"kafka.tls.ca_file:",
				"kafka.sasl.username: required",
				"kafka.sasl.password: secret: environment variable NHI_TEST_UNSET_PASSWORD is not set",
				"clickhouse.addr: required",
				"clickhouse.password: secret:",
				"outputs.max_lag: must not be negative",
				"outputs.syslog[0]",
				"outputs.syslog[0].min_severity: unknown severity",
				`outputs.syslog[2].name: "syslog" is also the name of outputs.syslog[1]`,
				"detect.volume_spike: z must be positive",
				"detect.rules[0]:",
				"log.level:",
			},
		},
		{name: "unknown key", yaml: "kafka:\n  brokerz: [x]\n", want: []string{"field brokerz not found"}},
		{name: "scale-out without links", yaml: "kafka:\n  brokers: [b:9092]\n  inputs: [{topic: a, format: kong}]\n  repartition_topic: a\n",
			want: []string{`kafka.repartition_topic: topic "a" is also an input`, "kafka.links_topic: required with kafka.repartition_topic"}},
		{name: "links without scale-out", yaml: "kafka:\n  brokers: [b:9092]\n  inputs: [{topic: a, format: kong}]\n  links_topic: l\n",
			want: []string{"kafka.links_topic: only used with kafka.repartition_topic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(path)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	secret := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("kafka:\n  brokers: [file:9092]\n  inputs: [{topic: t, format: kong}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NHI_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("NHI_CLICKHOUSE_PASSWORD_FILE", secret)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := cfg.ClickHouse.Password.Value()
	if strings.Join(cfg.Kafka.Brokers, ",") != "a:1,b:2" || pw != "s3cret" || err != nil {
		t.Fatalf("brokers %v password %q (%v)", cfg.Kafka.Brokers, pw, err)
	}
}

func TestOutputsExampleIsValid(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../deploy/config/outputs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "outputs.yaml")
	if err := os.WriteFile(path, bytes.ReplaceAll(raw, []byte("/run/secrets/nhi-webhook-key"), []byte(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NHI_SPLUNK_HEC_TOKEN", "t")
	t.Setenv("NHI_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
	t.Setenv("NHI_PAGERDUTY_ROUTING_KEY", "r")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := cfg.Outputs.Open()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range outs {
		names = append(names, o.Output.Name()+">="+string(o.MinSeverity))
		o.Output.Close()
	}
	want := "splunk>=,qradar>=,arcsight>=medium,soar>=,slack>=high,pagerduty>=critical"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("outputs %s, want %s", got, want)
	}
	// The same file without its secrets lists every missing one at once.
	os.Unsetenv("NHI_SPLUNK_HEC_TOKEN")
	os.Unsetenv("NHI_PAGERDUTY_ROUTING_KEY")
	_, err = loadConfig(path)
	for _, w := range []string{"outputs.splunk[0]", "NHI_SPLUNK_HEC_TOKEN", "outputs.webhooks[2]", "NHI_PAGERDUTY_ROUTING_KEY"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

func TestRespondExampleIsValid(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/config/respond.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	gcp := filepath.Join(dir, "gcp-sa.json")
	raw = bytes.ReplaceAll(raw, []byte("/etc/nhisentry/kubeconfig"), []byte(kubeconfig))
	raw = bytes.ReplaceAll(raw, []byte("/etc/nhisentry/gcp-sa.json"), []byte(gcp))
	for path, content := range map[string]string{
		kubeconfig: "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:6443\"}}]\n" +
			"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
		gcp: `{"type":"service_account","client_email":"nhi@p.iam.gserviceaccount.com","private_key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "respond.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NHI_VAULT_TOKEN", "v")
	t.Setenv("NHI_SOAR_KEY", "k")
	if _, err := loadConfig(path); err != nil {
		t.Fatal(err)
	}
	// A rule naming a provider that is not configured, and a bad mode, are
	// listed with everything else.
	bad := bytes.Replace(raw, []byte("provider: gcp_iam}"), []byte("provider: gcp}"), 1)
	bad = bytes.Replace(bad, []byte("mode: shadow"), []byte("mode: yolo"), 1)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig(path)
	for _, w := range []string{`respond.rules[4].actions[0].provider: no provider named "gcp"`, `respond.rules[1].mode: want dry-run`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}
