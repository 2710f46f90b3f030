package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	testKey = "whsec-7f3b2a9c41d8e6f0"
	signed  = 1793973010 // when the tests' requests are signed
)

func keyFile(t *testing.T) secure.Secret {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secure.Secret{File: f}
}

func newTestProvider(t *testing.T, c Config) response.Provider {
	t.Helper()
	if c.Secret.IsZero() {
		c.Secret = keyFile(t)
	}
	c.now = func() time.Time { return time.Unix(signed, 0) }
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var testRequest = response.Request{
	ID:     "9c1d6f0e2b7a4c3d",
	Action: response.ActionDisable, Provider: "soar",
	Target: response.Target{
		Identity:   schemas.Identity{ID: "aws:user/111122223333/ci-bot", Kind: schemas.KindUser, Name: "ci-bot"},
		Credential: "AKIAIOSFODNN7EXAMPLE", CredentialType: "aws_access_key", Account: "111122223333", Name: "ci-bot",
	},
	FindingID: "3e7a19c0b2d84f65a7c1e9d2b0f4a6c8", Reason: "12 denied calls in the hour (> 10) & rising",
	At: time.Date(2026, 11, 22, 9, 30, 15, 0, time.UTC),
}

// The request's JSON, written out by hand: `<`, `>` and `&` are sent as they are.
const requestJSON = `{"id":"9c1d6f0e2b7a4c3d","action":"disable_identity","provider":"soar","target":{"identity":{"id":"aws:user/111122223333/ci-bot","kind":"user","name":"ci-bot"},"credential":"AKIAIOSFODNN7EXAMPLE","credential_type":"aws_access_key","account":"111122223333","name":"ci-bot"},"finding_id":"3e7a19c0b2d84f65a7c1e9d2b0f4a6c8","reason":"12 denied calls in the hour (> 10) & rising","at":"2026-11-22T09:30:15Z"}`

// receiver records requests and answers each with its next queued reply
// (the default: 200 with body).
type receiver struct {
	mu   sync.Mutex
	got  []received
	body string
}

type received struct {
	Method, Path string
	Header       http.Header
	Body         string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, received{req.Method, req.URL.Path, req.Header.Clone(), string(b)})
	r.mu.Unlock()
	_, _ = io.WriteString(w, r.body)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// wantSigned checks the signature headers with an HMAC computed here, apart
// from internal/sign.
func wantSigned(t *testing.T, h http.Header, body string) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte("1793973010." + body))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if h.Get("X-Nhisentry-Timestamp") != "1793973010" || !hmac.Equal([]byte(h.Get("X-Nhisentry-Signature")), []byte(want)) {
		t.Errorf("timestamp %q signature %q, want 1793973010 and %s", h.Get("X-Nhisentry-Timestamp"), h.Get("X-Nhisentry-Signature"), want)
	}
}

func TestDoAndUndo(t *testing.T) {
	tests := []struct {
		name       string
		reply      string
		wantDetail string
		wantUndo   map[string]string
	}{
		{"reply with detail and undo state", `{"detail":"ticket SEC-4411: key AKIAIOSFODNN7EXAMPLE deactivated","undo":{"ticket":"SEC-4411"}}`,
			"ticket SEC-4411: key AKIAIOSFODNN7EXAMPLE deactivated", map[string]string{"ticket": "SEC-4411"}},
		{"empty reply", "", "receiver accepted disable_identity (HTTP 200)", nil},
		{"reply that is not JSON", "OK", "receiver accepted disable_identity (HTTP 200)", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &receiver{body: tt.reply}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			p := newTestProvider(t, Config{Name: "soar", URL: srv.URL + "/hooks/nhisentry?token=q", Headers: map[string]string{"x-team": "secops"}})
			ctx := context.Background()

			done, err := p.Do(ctx, testRequest)
			if err != nil {
				t.Fatal(err)
			}
			if done.Detail != tt.wantDetail || !maps.Equal(done.Undo, tt.wantUndo) {
				t.Errorf("Do result %+v, want detail %q undo %v", done, tt.wantDetail, tt.wantUndo)
			}
			if _, err := p.Undo(ctx, testRequest, done); err != nil {
				t.Fatal(err)
			}

			got := rcv.requests()
			if len(got) != 2 {
				t.Fatalf("%d requests, want 2", len(got))
			}
			undoState := ""
			if tt.wantUndo != nil {
				undoState = `,"undo":{"ticket":"SEC-4411"}`
			}
			wantBodies := []string{
				`{"request":` + requestJSON + `,"operation":"do"}`,
				`{"request":` + requestJSON + `,"operation":"undo","result":{"detail":"` + tt.wantDetail + `"` + undoState + `}}`,
			}
			for i, r := range got {
				if r.Method != http.MethodPost || r.Path != "/hooks/nhisentry" || r.Body != wantBodies[i] {
					t.Errorf("request %d: %s %s\n%s\nwant POST /hooks/nhisentry\n%s", i, r.Method, r.Path, r.Body, wantBodies[i])
				}
				for name, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "nhisentry", "X-Nhisentry-Request": "9c1d6f0e2b7a4c3d", "X-Team": "secops"} {
					if r.Header.Get(name) != want {
						t.Errorf("request %d: %s = %q, want %q", i, name, r.Header.Get(name), want)
					}
				}
				wantSigned(t, r.Header, r.Body)
			}
		})
	}
}

func TestStatuses(t *testing.T) {
	tests := []struct {
		name   string
		undo   bool
		fault  providertest.Fault
		want   providertest.Class
		detail string
	}{
		{"204", false, providertest.Fault{Status: 204}, providertest.OK, "receiver accepted disable_identity (HTTP 204)"},
		{"202 on undo", true, providertest.Fault{Status: 202, Body: `{"detail":"queued for the on-call"}`}, providertest.OK, "queued for the on-call"},
		{"bad request with detail", false, providertest.Fault{Status: 400, Body: `{"detail":"unknown identity kind"}`}, providertest.Permanent, "soar: do disable_identity: POST http://HOST/hook: HTTP 400: unknown identity kind"},
		{"bad signature", false, providertest.Fault{Status: 401, Body: "signature mismatch\n"}, providertest.Permanent, "HTTP 401: signature mismatch"},
		{"forbidden", false, providertest.Fault{Status: 403}, providertest.Permanent, "HTTP 403: (empty reply)"},
		{"gone", false, providertest.Fault{Status: 410}, providertest.Permanent, "HTTP 410"},
		{"redirect not followed", false, providertest.Fault{Status: 302, Header: map[string]string{"Location": "/elsewhere"}}, providertest.Permanent, "HTTP 302"},
		{"not implemented do", false, providertest.Fault{Status: 501}, providertest.Permanent, "HTTP 501"},
		{"not implemented undo", true, providertest.Fault{Status: 501, Body: `{"detail":"keys cannot be re-enabled here"}`}, providertest.Irreversible, "HTTP 501: keys cannot be re-enabled here"},
		{"request timeout", false, providertest.Fault{Status: 408}, providertest.Retryable, "HTTP 408"},
		{"throttled", false, providertest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}}, providertest.Retryable, "HTTP 429"},
		{"server error", true, providertest.Fault{Status: 500, Body: "<html>\n<h1>Internal Server Error</h1>\n</html>"}, providertest.Retryable, "HTTP 500: <html> <h1>Internal Server Error</h1> </html>"},
		{"unavailable", false, providertest.Fault{Status: 503}, providertest.Retryable, "HTTP 503"},
		{"timeout", false, providertest.Fault{Delay: 5 * time.Second}, providertest.Retryable, "soar: do disable_identity: POST http://HOST/hook: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := &receiver{}
			faults := &providertest.Faults{Next: rcv}
			faults.Inject(tt.fault)
			srv := httptest.NewServer(faults)
			defer srv.Close()
			p := newTestProvider(t, Config{Name: "soar", URL: srv.URL + "/hook?token=s3cr3t", Timeout: 300 * time.Millisecond})
			var res response.Result
			var err error
			if tt.undo {
				res, err = p.Undo(context.Background(), testRequest, response.Result{Detail: "done"})
			} else {
				res, err = p.Do(context.Background(), testRequest)
			}
			providertest.WantClass(t, err, tt.want)
			detail := tt.detail
			if strings.Contains(detail, "HOST") {
				detail = strings.ReplaceAll(detail, "HOST", strings.TrimPrefix(srv.URL, "http://"))
			}
			if err == nil && res.Detail != detail {
				t.Errorf("detail %q, want %q", res.Detail, detail)
			}
			if err != nil && (!strings.Contains(err.Error(), detail) || strings.Contains(err.Error(), "s3cr3t")) {
				t.Errorf("error %q: want it to hold %q and not the URL's query", err, detail)
			}
			if n := faults.Requests(); n != 1 {
				t.Errorf("%d requests, want 1 (no retry, no redirect followed)", n)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	all := newTestProvider(t, Config{URL: "https://soar.example.com/hook"})
	some := newTestProvider(t, Config{URL: "https://soar.example.com/hook", Actions: []string{"notify", "isolate_workload"}})
	for _, a := range []response.Action{response.ActionIsolate, response.ActionDisable, response.ActionRevoke, response.ActionNotify} {
		if err := all.Check(a, testRequest.Target); err != nil {
			t.Errorf("default actions: Check(%s) = %v", a, err)
		}
		err := some.Check(a, testRequest.Target)
		if want := a == response.ActionNotify || a == response.ActionIsolate; want != (err == nil) || (err != nil && !errors.Is(err, response.ErrNotApplicable)) {
			t.Errorf("actions notify, isolate: Check(%s) = %v", a, err)
		}
	}
	if _, err := some.Do(context.Background(), testRequest); !errors.Is(err, response.ErrNotApplicable) {
		t.Errorf("Do of an action not handled: %v, want ErrNotApplicable without a request", err)
	}
}

func TestValidate(t *testing.T) {
	cert := securetest.SelfSigned(t)
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"minimal", Config{URL: "https://soar.example.com/hook", Secret: keyFile(t)}, nil},
		{"everything", Config{URL: "https://soar.example.com/hook", Secret: keyFile(t), Actions: []string{"notify"}, Headers: map[string]string{"Authorization": "Bearer x"}, TLS: secure.TLS{Enabled: true, CAFile: cert.CertFile}, Timeout: time.Second}, nil},
		{"everything wrong", Config{URL: "soar.example.com/hook?token=s3cr3t", Actions: []string{"delete_everything", "notify", "notify"}, Headers: map[string]string{"Bad Name": "x", "content-type": "text/plain", "X-Nhisentry-Signature": "x", "X-Ok": "a\r\nb"}, Timeout: -time.Second}, []string{
			"w.url: want an absolute http or https URL",
			"w.secret: no secret configured",
			`w.actions[0]: "delete_everything", want one of`,
			"w.actions[2]: notify is listed twice",
			`w.headers: "Bad Name" is not a header name`,
			"w.headers: X-Nhisentry-Signature is set by nhisentry",
			"w.headers.X-Ok: a value cannot hold CR, LF or NUL",
			"w.headers: Content-Type is set by nhisentry",
			"w.timeout: -1s is negative",
		}},
		{"no url", Config{Secret: keyFile(t)}, []string{"w.url: required"}},
		{"tls over http", Config{URL: "http://soar/hook", Secret: keyFile(t), TLS: secure.TLS{Enabled: true}}, []string{"w.url: tls is enabled, so the url must be https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.c.Validate("w")
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i].Error(), w) || strings.Contains(errs[i].Error(), "s3cr3t") {
					t.Errorf("error %d: %q, want it to start with %q (and not quote the url)", i, errs[i], w)
				}
			}
		})
	}
}

func TestTLS(t *testing.T) {
	cert := securetest.SelfSigned(t)
	srv := httptest.NewUnstartedServer(&receiver{})
	srv.TLS = cert.Server
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	p := newTestProvider(t, Config{URL: srv.URL, TLS: secure.TLS{Enabled: true, CAFile: cert.CertFile}})
	if _, err := p.Do(context.Background(), testRequest); err != nil {
		t.Fatalf("with the test CA: %v", err)
	}
	p = newTestProvider(t, Config{URL: srv.URL})
	_, err := p.Do(context.Background(), testRequest)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the test CA: %v, want a certificate error", err)
	}
	providertest.WantClass(t, err, providertest.Retryable)
}
