package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nhisentry/nhisentry/response"
)

// DefaultTimeout bounds each API call when a provider's timeout is zero.
const DefaultTimeout = 10 * time.Second

// Labels and annotations nhisentry puts on the objects it creates, so an
// operator can find them and tell which finding and request made them.
const (
	LabelManagedBy        = "app.kubernetes.io/managed-by"
	ManagedBy             = "nhisentry"
	AnnotationRequestID   = "nhisentry.io/request-id"
	AnnotationFindingID   = "nhisentry.io/finding-id"
	AnnotationReason      = "nhisentry.io/reason"
	maxAnnotationReason   = 1024
	userAgent             = "nhisentry"
	retryAfterHeader      = "Retry-After"
	hashedSuffixHexDigits = 16
)

// LoadRESTConfig reads the client configuration: the kubeconfig file at
// path with the named context (its current context when empty), or the
// pod's in-cluster service account when path is empty. It reads local
// files and the environment only.
func LoadRESTConfig(path, kubeContext string) (*rest.Config, error) {
	if path == "" {
		if kubeContext != "" {
			return nil, errors.New("a context needs a kubeconfig file")
		}
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return rc, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kubeContext}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return rc, nil
}

// PrepareRESTConfig returns a copy of rc with the per-call timeout, the
// user agent, and client-go's own retries switched off.
//
// client-go silently repeats a request up to ten times when a 429 or 5xx
// reply carries Retry-After; the response executor owns retries and
// budgets, so the header is dropped before client-go sees it and every API
// call is made once.
func PrepareRESTConfig(rc *rest.Config, timeout time.Duration) *rest.Config {
	c := rest.CopyConfig(rc)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.Timeout = timeout
	c.UserAgent = userAgent
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return noRetryAfter{rt} })
	return c
}

type noRetryAfter struct{ next http.RoundTripper }

func (n noRetryAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := n.next.RoundTrip(r)
	if resp != nil {
		resp.Header.Del(retryAfterHeader)
	}
	return resp, err
}

// Classify marks err Permanent when the API server refused the request for
// a reason repeating it cannot fix: a bad or unauthenticated request, no
// permission, an unknown resource or namespace, an object that fails
// validation. Throttling (429), server errors, conflicts and timeouts stay
// plain errors, which the executor retries.
func Classify(err error) error {
	var st apierrors.APIStatus
	if err == nil || !errors.As(err, &st) {
		return err
	}
	switch st.Status().Code {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusNotAcceptable, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return response.Permanent{Err: err}
	}
	return err
}

// Annotations are the annotations of an object made for req.
func Annotations(req response.Request) map[string]string {
	reason := req.Reason
	if len(reason) > maxAnnotationReason {
		reason = strings.ToValidUTF8(reason[:maxAnnotationReason], "")
	}
	return map[string]string{
		AnnotationRequestID: req.ID,
		AnnotationFindingID: req.FindingID,
		AnnotationReason:    reason,
	}
}

// ShortHash is the first 16 hex digits of s's SHA-256: a stable name part
// for strings too long or too free-form for an object name.
func ShortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashedSuffixHexDigits]
}
