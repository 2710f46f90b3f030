// Package secure owns the connection-security settings shared by every
// client the service opens (Kafka, ClickHouse, syslog, HTTP outputs): TLS
// settings read from files and secrets read from the environment or a file,
// never from the configuration file itself, so a config can be committed.
package secure

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// TLS configures a TLS client. The zero value (Enabled false) means plain
// text.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the server; empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Config returns the tls.Config, or nil when TLS is disabled.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Validate lists every problem, each prefixed with field (a YAML path).
func (t TLS) Validate(field string) []error {
	if !t.Enabled {
		return nil
	}
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s: cert_file and key_file go together", field))
	}
	for _, f := range []struct{ name, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", field, f.name, err))
		}
	}
	if len(errs) == 0 {
		if _, err := t.Config(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	return errs
}

// Secret names where a secret comes from: an environment variable or a file
// (trailing newlines trimmed). The value itself never appears in the
// configuration file, and String never prints it.
type Secret struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// ErrNoSecret is returned by Value when neither source is set.
var ErrNoSecret = errors.New("no secret configured (set env or file)")

// IsZero reports whether no source is set.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" }

// Value reads the secret.
func (s Secret) Value() (string, error) {
	switch {
	case s.Env != "" && s.File != "":
		return "", errors.New("secret: set env or file, not both")
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("secret: environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret: file %s is empty", s.File)
		}
		return v, nil
	}
	return "", ErrNoSecret
}

// Validate reports a secret that cannot be read, prefixed with field.
// required says whether an unset secret is an error.
func (s Secret) Validate(field string, required bool) []error {
	if s.IsZero() && !required {
		return nil
	}
	if _, err := s.Value(); err != nil {
		return []error{fmt.Errorf("%s: %w", field, err)}
	}
	return nil
}

// String describes the source, never the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	}
	return "unset"
}

// HTTPClient returns a client with these TLS settings and a timeout per
// request that never follows redirects: a redirect is a misconfigured URL,
// and following it would carry a token or a signature to wherever it
// points.
func (t TLS) HTTPClient(timeout time.Duration) (*http.Client, error) {
	tc, err := t.Config()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
