package formats

import (
	"fmt"
	"strings"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/cloudaudit"
	"github.com/nhisentry/nhisentry/ingest/gateway"
	"github.com/nhisentry/nhisentry/ingest/issuance"
	"github.com/nhisentry/nhisentry/ingest/mesh"
)

// Builtin returns a new instance of every built-in decoder, with default
// limits, in a stable order (by family, as SPEC §2 lists them).
func Builtin() []ingest.Decoder {
	return []ingest.Decoder{
		mesh.New(),
		mesh.NewEnvoyText(),
		mesh.NewZtunnel(),
		mesh.NewLinkerdJSON(),
		mesh.NewLinkerdText(),
		gateway.New(),
		gateway.NewAPIGateway(),
		gateway.NewNGINX(),
		gateway.NewNGINXJSON(),
		cloudaudit.New(),
		cloudaudit.NewGCPAudit(),
		cloudaudit.NewAzureActivity(),
		cloudaudit.NewEntraSignIn(),
		cloudaudit.NewEntraAudit(),
		cloudaudit.NewK8sAudit(),
		issuance.New(),
		issuance.NewCertManager(),
		issuance.NewSPIREServer(),
		issuance.NewCTCertstream(),
		issuance.NewGitHubOIDC(),
	}
}

// ByName returns a new built-in decoder for the format name ("auto" detects
// the format of each record), or an error that lists the valid names.
func ByName(name string) (ingest.Decoder, error) {
	all := Builtin()
	if name == FormatAuto {
		return NewAuto(all), nil
	}
	names := make([]string, 0, len(all)+1)
	for _, d := range all {
		if d.Format() == name {
			return d, nil
		}
		names = append(names, d.Format())
	}
	names = append(names, FormatAuto)
	return nil, fmt.Errorf("unknown format %q: valid formats are %s", name, strings.Join(names, ", "))
}
