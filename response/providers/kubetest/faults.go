package kubetest

import (
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response/providers/providertest"
)

// FaultProxy starts a proxy to c's apiserver that authenticates as admin
// and answers with the faults injected into the returned Faults first. The
// returned config reaches the proxy over plain HTTP with no credentials.
func FaultProxy(t testing.TB, c *Cluster) (*providertest.Faults, *rest.Config) {
	t.Helper()
	upstream, err := url.Parse(c.Admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	if proxy.Transport, err = rest.TransportFor(c.Admin); err != nil {
		t.Fatal(err)
	}
	faults := &providertest.Faults{Next: proxy}
	srv := httptest.NewServer(faults)
	t.Cleanup(srv.Close)
	return faults, &rest.Config{Host: srv.URL}
}

// FaultCase is an injected API failure and how a provider must class it.
type FaultCase struct {
	Name  string
	Fault providertest.Fault
	Want  providertest.Class
}

// FaultCases are the failures every provider on the API server must
// class alike: throttling, server errors and a reply later than timeout
// are retryable; Forbidden and Invalid are permanent. The JSON replies
// carry Retry-After, which client-go obeys by retrying unless told not to;
// its value 0 has that retry come at once, inside any timeout, so a hidden
// retry shows as a second request.
func FaultCases(timeout time.Duration) []FaultCase {
	status := func(code int, reason string) providertest.Fault {
		return providertest.Fault{
			Status: code,
			Body:   fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","reason":%q,"code":%d}`, reason, code),
			Header: map[string]string{"Content-Type": "application/json", "Retry-After": "0"},
		}
	}
	return []FaultCase{
		{"throttled", status(429, "TooManyRequests"), providertest.Retryable},
		{"unavailable", status(503, "ServiceUnavailable"), providertest.Retryable},
		{"internal error, not JSON", providertest.Fault{Status: 500, Body: "oops"}, providertest.Retryable},
		{"bad gateway", providertest.Fault{Status: 502, Body: "<html>bad gateway</html>"}, providertest.Retryable},
		{"timeout", providertest.Fault{Delay: timeout + 5*time.Second}, providertest.Retryable},
		{"forbidden", status(403, "Forbidden"), providertest.Permanent},
		{"invalid", status(422, "Invalid"), providertest.Permanent},
	}
}
