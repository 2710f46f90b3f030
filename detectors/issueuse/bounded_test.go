package issueuse

import (
	"fmt"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestCertificateSetStaysBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OrgDomains = []string{"example.com"}
	cfg.MaxCertificates = 100
	d := New(cfg, nil)
	at := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		ev := schemas.Event{
			Time: schemas.At(at.Add(time.Duration(i) * time.Second)), Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
			Source:   schemas.Source{Family: schemas.FamilyIssuance, Format: FormatCertManager},
			Issuance: &schemas.Issuance{CredentialType: "x509_certificate", SANs: []string{fmt.Sprintf("h%d.example.com", i)}},
		}
		d.Detect(&detectors.Input{Event: &ev}, nil)
	}
	if d.certs.Len() != 100 {
		t.Fatalf("certificate set holds %d keys, limit 100", d.certs.Len())
	}
}
