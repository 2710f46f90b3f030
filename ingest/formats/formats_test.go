package formats

import (
	"strings"
	"testing"
)

func TestByName(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Builtin() {
		name := d.Format()
		if seen[name] {
			t.Fatalf("format %q listed twice", name)
		}
		seen[name] = true
		got, err := ByName(name)
		if err != nil || got.Format() != name {
			t.Errorf("ByName(%q) = %v, %v", name, got, err)
		}
	}
	for _, name := range []string{
		"envoy_json", "envoy_text", "ztunnel", "linkerd_json", "linkerd_text", "kong", "apigateway", "nginx",
		"nginx_json", "cloudtrail", "gcp_audit", "azure_activity", "entra_signin", "entra_audit", "k8s_audit",
		"vault_audit", "certmanager", "spire_server", "ct_certstream", "github_oidc",
	} {
		if !seen[name] {
			t.Errorf("format %q is not built in", name)
		}
	}
	_, err := ByName("splunk")
	if err == nil || !strings.Contains(err.Error(), "envoy_json, envoy_text") || !strings.HasSuffix(err.Error(), ", auto") {
		t.Errorf("ByName(unknown) error %v does not list the valid names", err)
	}
}
