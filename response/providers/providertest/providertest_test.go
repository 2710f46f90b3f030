package providertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/response"
)

func TestFaults(t *testing.T) {
	f := &Faults{Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "real") })}
	srv := httptest.NewServer(f)
	defer srv.Close()
	f.Inject(Fault{Status: 429, Body: "slow down", Header: map[string]string{"Retry-After": "1"}}, Fault{Delay: time.Second}, Fault{Delay: time.Millisecond})

	get := func(timeout time.Duration) (int, string, http.Header, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header, nil
	}
	if code, body, h, err := get(time.Second); err != nil || code != 429 || body != "slow down" || h.Get("Retry-After") != "1" {
		t.Errorf("first: %d %q %v %v", code, body, h, err)
	}
	if _, _, _, err := get(50 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second, held past the client's timeout: %v", err)
	}
	if code, body, _, err := get(time.Second); err != nil || code != 200 || body != "real" {
		t.Errorf("third, delayed then real: %d %q %v", code, body, err)
	}
	if code, body, _, err := get(time.Second); err != nil || code != 200 || body != "real" {
		t.Errorf("fourth, no fault left: %d %q %v", code, body, err)
	}
	if n := f.Requests(); n != 4 {
		t.Errorf("Requests = %d, want 4", n)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Class
	}{
		{nil, OK},
		{errors.New("HTTP 503"), Retryable},
		{response.Permanent{Err: errors.New("HTTP 403")}, Permanent},
		{fmt.Errorf("vault: %w", response.ErrIrreversible), Irreversible},
		{fmt.Errorf("aws_iam: %w", response.ErrNotApplicable), NotApplicable},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
