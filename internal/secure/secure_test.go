package secure_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
)

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NHI_TEST_SECRET", "from-env")
	tests := []struct {
		name    string
		s       secure.Secret
		want    string
		wantErr string
	}{
		{"env", secure.Secret{Env: "NHI_TEST_SECRET"}, "from-env", ""},
		{"file, newline trimmed", secure.Secret{File: file}, "from-file", ""},
		{"unset env", secure.Secret{Env: "NHI_TEST_NOT_SET"}, "", "NHI_TEST_NOT_SET is not set"},
		{"missing file", secure.Secret{File: filepath.Join(dir, "nope")}, "", "no such file"},
		{"empty file", secure.Secret{File: empty}, "", "is empty"},
		{"both", secure.Secret{Env: "NHI_TEST_SECRET", File: file}, "", "not both"},
		{"none", secure.Secret{}, "", "no secret configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Value()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
			if strings.Contains(tt.s.String(), got) {
				t.Fatalf("String() %q reveals the value", tt.s.String())
			}
		})
	}
}

func TestTLS(t *testing.T) {
	cert := securetest.SelfSigned(t)
	if c, err := (secure.TLS{}).Config(); c != nil || err != nil {
		t.Fatalf("disabled: %v %v", c, err)
	}
	c, err := secure.TLS{Enabled: true, CAFile: cert.CertFile, CertFile: cert.CertFile, KeyFile: cert.KeyFile}.Config()
	if err != nil || c.RootCAs == nil || len(c.Certificates) != 1 {
		t.Fatalf("got %+v, %v", c, err)
	}
	errs := secure.TLS{Enabled: true, CAFile: "/nonexistent/ca", CertFile: cert.CertFile}.Validate("x.tls")
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"x.tls: cert_file and key_file go together", "x.tls.ca_file:"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	if errs := (secure.TLS{Enabled: true, CAFile: cert.KeyFile}).Validate("y"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "no PEM certificate") {
		t.Errorf("a key as CA: %v", errs)
	}
}
