package spire

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	workload = "spiffe://example.org/ns/prod/sa/payments"
	agent    = "spiffe://example.org/spire/agent/join_token/4f1e"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"ok", Config{Socket: "/run/spire/api.sock"}, nil},
		{"no socket", Config{}, []string{"responses.spire.socket: required"}},
		{"tcp", Config{Socket: "tcp://spire:8081", Timeout: -time.Second}, []string{
			"responses.spire.socket: \"tcp://spire:8081\": want a unix socket path",
			"responses.spire.timeout: must not be negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.c.Validate("responses.spire")
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors", errs, len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, err, tt.want[i])
				}
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without a socket")
	}
}

func TestCheck(t *testing.T) {
	p := newProvider(t, Config{Socket: filepath.Join(t.TempDir(), "api.sock")})
	if p.Name() != "spire" {
		t.Errorf("Name = %q, want the default spire", p.Name())
	}
	id := func(s string) schemas.Identity { return schemas.Identity{ID: s, Kind: schemas.KindWorkload} }
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"revoke workload", response.ActionRevoke, response.Target{Identity: id(workload)}, true},
		{"revoke non-spiffe", response.ActionRevoke, response.Target{Identity: id("aws:role/1/x")}, false},
		{"revoke trust domain only", response.ActionRevoke, response.Target{Identity: id("spiffe://example.org")}, false},
		{"revoke an agent", response.ActionRevoke, response.Target{Identity: id(agent)}, false},
		{"disable by target agent", response.ActionDisable, response.Target{Identity: id(workload), Agent: agent}, true},
		{"disable an agent identity", response.ActionDisable, response.Target{Identity: id(agent)}, true},
		{"disable a workload", response.ActionDisable, response.Target{Identity: id(workload)}, false},
		{"disable a non-agent target agent", response.ActionDisable, response.Target{Agent: workload}, false},
		{"isolate", response.ActionIsolate, response.Target{Identity: id(workload), Agent: agent}, false},
		{"notify", response.ActionNotify, response.Target{Identity: id(workload)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.action, tt.target)
			if tt.ok && err != nil {
				t.Fatalf("Check = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, response.ErrNotApplicable) {
				t.Fatalf("Check = %v, want ErrNotApplicable", err)
			}
		})
	}
}

// fake is a SPIRE admin API that answers what a test sets.
type fake struct {
	entryv1.UnimplementedEntryServer
	agentv1.UnimplementedAgentServer

	listErr, getErr, banErr error
	deleteCode, createCode  codes.Code
	slow                    bool // ListEntries and GetAgent wait for the caller to give up
}

func (f *fake) ListEntries(ctx context.Context, req *entryv1.ListEntriesRequest) (*entryv1.ListEntriesResponse, error) {
	if f.slow {
		<-ctx.Done()
	}
	if f.listErr != nil {
		return nil, f.listErr
	}
	return &entryv1.ListEntriesResponse{Entries: []*types.Entry{
		{Id: "e1", SpiffeId: req.GetFilter().GetBySpiffeId(), ParentId: &types.SPIFFEID{TrustDomain: "example.org", Path: "/spire/agent/join_token/4f1e"}},
		{Id: "e2", SpiffeId: req.GetFilter().GetBySpiffeId(), ParentId: &types.SPIFFEID{TrustDomain: "example.org", Path: "/spire/agent/join_token/4f1e"}},
	}}, nil
}

func (f *fake) BatchDeleteEntry(_ context.Context, req *entryv1.BatchDeleteEntryRequest) (*entryv1.BatchDeleteEntryResponse, error) {
	resp := &entryv1.BatchDeleteEntryResponse{}
	for i, id := range req.GetIds() {
		code := f.deleteCode
		if i > 0 {
			code = codes.OK // only the first entry fails, to check mixed batches
		}
		resp.Results = append(resp.Results, &entryv1.BatchDeleteEntryResponse_Result{Id: id, Status: &types.Status{Code: int32(code), Message: code.String()}})
	}
	return resp, nil
}

func (f *fake) BatchCreateEntry(_ context.Context, req *entryv1.BatchCreateEntryRequest) (*entryv1.BatchCreateEntryResponse, error) {
	resp := &entryv1.BatchCreateEntryResponse{}
	for range req.GetEntries() {
		resp.Results = append(resp.Results, &entryv1.BatchCreateEntryResponse_Result{Status: &types.Status{Code: int32(f.createCode), Message: f.createCode.String()}})
	}
	return resp, nil
}

func (f *fake) GetAgent(ctx context.Context, _ *agentv1.GetAgentRequest) (*types.Agent, error) {
	if f.slow {
		<-ctx.Done()
	}
	if f.getErr != nil {
		return nil, f.getErr
	}
	return &types.Agent{}, nil
}

func (f *fake) BanAgent(context.Context, *agentv1.BanAgentRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, f.banErr
}

// serve runs f on a unix socket and returns the socket's path.
func serve(t *testing.T, f *fake) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	entryv1.RegisterEntryServer(srv, f)
	agentv1.RegisterAgentServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return socket
}

func newProvider(t *testing.T, c Config) response.Provider {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(io.Closer).Close() })
	return p
}

func TestFaults(t *testing.T) {
	revoke := response.Request{ID: "r1", Action: response.ActionRevoke, Target: response.Target{Identity: schemas.Identity{ID: workload}}}
	ban := response.Request{ID: "r2", Action: response.ActionDisable, Target: response.Target{Agent: agent}}
	// Undo of a revoke that deleted one entry.
	deleted := response.Result{Undo: map[string]string{undoSpiffeID: workload, undoEntries: `{"entries":[{"id":"e1","spiffeId":{"trustDomain":"example.org","path":"/ns/prod/sa/payments"}}]}`}}
	tests := []struct {
		name      string
		fake      fake
		undo      bool
		req       response.Request
		wantErr   bool
		permanent bool
	}{
		{"list unavailable", fake{listErr: status.Error(codes.Unavailable, "down")}, false, revoke, true, false},
		{"list resource exhausted", fake{listErr: status.Error(codes.ResourceExhausted, "rate limited")}, false, revoke, true, false},
		{"list permission denied", fake{listErr: status.Error(codes.PermissionDenied, "no")}, false, revoke, true, true},
		{"list invalid argument", fake{listErr: status.Error(codes.InvalidArgument, "malformed by_spiffe_id filter")}, false, revoke, true, true},
		{"entry already deleted", fake{deleteCode: codes.NotFound}, false, revoke, false, false},
		{"entry delete denied", fake{deleteCode: codes.PermissionDenied}, false, revoke, true, true},
		{"entry delete internal", fake{deleteCode: codes.Internal}, false, revoke, true, false},
		{"unknown agent", fake{getErr: status.Error(codes.NotFound, "agent not found")}, false, ban, true, true},
		{"ban unavailable", fake{banErr: status.Error(codes.Unavailable, "down")}, false, ban, true, false},
		{"ban denied", fake{banErr: status.Error(codes.PermissionDenied, "no")}, false, ban, true, true},
		{"ban ok", fake{}, false, ban, false, false},
		{"recreate already exists", fake{createCode: codes.AlreadyExists}, true, revoke, false, false},
		{"recreate invalid", fake{createCode: codes.InvalidArgument}, true, revoke, true, true},
		{"recreate unavailable", fake{createCode: codes.Unavailable}, true, revoke, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, Config{Socket: serve(t, &tt.fake)})
			var err error
			if tt.undo {
				_, err = p.Undo(t.Context(), tt.req, deleted)
			} else {
				_, err = p.Do(t.Context(), tt.req)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if response.IsPermanent(err) != tt.permanent {
				t.Fatalf("err = %v, permanent = %v, want %v", err, response.IsPermanent(err), tt.permanent)
			}
		})
	}
}

func TestDeleteKeepsOnlyDeletedEntries(t *testing.T) {
	// e1 was deleted by someone else (NOT_FOUND), e2 by this request: only
	// e2 may come back on undo.
	p := newProvider(t, Config{Socket: serve(t, &fake{deleteCode: codes.NotFound})})
	res, err := p.Do(t.Context(), response.Request{Action: response.ActionRevoke, Target: response.Target{Identity: schemas.Identity{ID: workload}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "deleted 1 registration entries of " + workload; res.Detail != want {
		t.Errorf("Detail = %q, want %q", res.Detail, want)
	}
	if saved := res.Undo[undoEntries]; strings.Contains(saved, `"e1"`) || !strings.Contains(saved, `"e2"`) {
		t.Errorf("undo entries = %s, want e2 only", saved)
	}
}

func TestTimeout(t *testing.T) {
	socket := serve(t, &fake{slow: true})
	p := newProvider(t, Config{Socket: socket, Timeout: 300 * time.Millisecond})
	for _, req := range []response.Request{
		{Action: response.ActionRevoke, Target: response.Target{Identity: schemas.Identity{ID: workload}}},
		{Action: response.ActionDisable, Target: response.Target{Agent: agent}},
	} {
		start := time.Now()
		_, err := p.Do(t.Context(), req)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %s with a 300ms timeout", req.Action, took)
		}
		if status.Code(err) != codes.DeadlineExceeded || response.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a retryable DeadlineExceeded", req.Action, err)
		}
	}
}

func TestNoServer(t *testing.T) {
	p := newProvider(t, Config{Socket: filepath.Join(t.TempDir(), "missing.sock")})
	_, err := p.Do(t.Context(), response.Request{Action: response.ActionRevoke, Target: response.Target{Identity: schemas.Identity{ID: workload}}})
	if err == nil || response.IsPermanent(err) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want a retryable Unavailable", err)
	}
}

func TestUndoBadState(t *testing.T) {
	p := newProvider(t, Config{Socket: serve(t, &fake{})})
	tests := []struct {
		name   string
		action response.Action
		undo   map[string]string
	}{
		{"revoke without entries", response.ActionRevoke, nil},
		{"revoke with garbage", response.ActionRevoke, map[string]string{undoEntries: "{"}},
		{"disable without agent", response.ActionDisable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Undo(t.Context(), response.Request{Action: tt.action}, response.Result{Undo: tt.undo})
			if !response.IsPermanent(err) {
				t.Fatalf("err = %v, want Permanent", err)
			}
		})
	}
	_, err := p.Undo(t.Context(), response.Request{Action: response.ActionNotify}, response.Result{})
	if !errors.Is(err, response.ErrIrreversible) {
		t.Errorf("undo notify: err = %v, want ErrIrreversible", err)
	}
}
