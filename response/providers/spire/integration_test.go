//go:build unix

package spire

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/spire/spiretest"
	"github.com/nhisentry/nhisentry/schemas"
)

// The tests below share one real spire-server (spiretest.Shared); each
// starts its own agents and uses its own SPIFFE ids.
func TestMain(m *testing.M) { os.Exit(spiretest.Main(m)) }

// svidTimeout covers an agent's sync (1s here) plus the server's entry
// cache refresh.
const svidTimeout = 45 * time.Second

func TestRealRevokeDeletesEntriesAndUndoRestoresThem(t *testing.T) {
	srv := spiretest.Shared(t)
	node := srv.StartAgent(t)
	const payments = "spiffe://example.org/ns/prod/sa/payments"
	const billing = "spiffe://example.org/ns/prod/sa/billing"
	parent := mustParse(t, node.ID)
	uid := spiretest.Selectors()
	withGID := append(slices.Clone(uid), &types.Selector{Type: "unix", Value: "gid:" + strconv.Itoa(os.Getgid())})
	createEntries(t, srv,
		&types.Entry{SpiffeId: mustParse(t, payments), ParentId: parent, Selectors: uid},
		&types.Entry{SpiffeId: mustParse(t, payments), ParentId: parent, Selectors: withGID, X509SvidTtl: 600, DnsNames: []string{"payments.prod"}},
		&types.Entry{SpiffeId: mustParse(t, billing), ParentId: parent, Selectors: uid},
	)
	before := listEntries(t, srv, payments)
	if len(before) != 2 {
		t.Fatalf("entries of %s before: %d, want 2", payments, len(before))
	}
	waitSVIDs(t, node, "the workload gets its payments SVID", func(ids []string) bool { return slices.Contains(ids, payments) })

	p := newProvider(t, Config{Socket: srv.Socket})
	req := response.Request{ID: "revoke-payments", Action: response.ActionRevoke, Target: response.Target{
		Identity: schemas.Identity{ID: payments, Kind: schemas.KindWorkload}, Agent: node.ID,
	}}
	if err := p.Check(req.Action, req.Target); err != nil {
		t.Fatalf("Check: %v", err)
	}
	done, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	t.Logf("Do: %s", done.Detail)
	if got := listEntries(t, srv, payments); len(got) != 0 {
		t.Fatalf("entries of %s after Do: %v, want none", payments, got)
	}
	if got := listEntries(t, srv, billing); len(got) != 1 {
		t.Fatalf("entries of %s after Do: %d, want 1 (untouched)", billing, len(got))
	}
	waitSVIDs(t, node, "the agent stops issuing payments", func(ids []string) bool {
		return !slices.Contains(ids, payments) && slices.Contains(ids, billing)
	})

	again, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("Do again: %v", err)
	}
	t.Logf("Do again: %s", again.Detail)

	for i := range 2 { // Undo twice: the second finds the entries there
		undone, err := p.Undo(t.Context(), req, done)
		if err != nil {
			t.Fatalf("Undo %d: %v", i+1, err)
		}
		t.Logf("Undo %d: %s", i+1, undone.Detail)
		if after := listEntries(t, srv, payments); !sameEntries(before, after) {
			t.Fatalf("entries after Undo %d:\n%v\nwant as before Do:\n%v", i+1, after, before)
		}
	}
	// The second Do deleted nothing, so its undo restores nothing.
	if _, err := p.Undo(t.Context(), req, again); err != nil {
		t.Fatalf("Undo of the second Do: %v", err)
	}
	if after := listEntries(t, srv, payments); !sameEntries(before, after) {
		t.Fatalf("entries after the second Do's Undo: %v", after)
	}
	waitSVIDs(t, node, "the workload gets payments again", func(ids []string) bool { return slices.Contains(ids, payments) })
}

func TestRealBanAgent(t *testing.T) {
	srv := spiretest.Shared(t)
	node := srv.StartAgent(t)
	const batch = "spiffe://example.org/ns/prod/sa/batch"
	createEntries(t, srv, &types.Entry{SpiffeId: mustParse(t, batch), ParentId: mustParse(t, node.ID), Selectors: spiretest.Selectors()})
	waitSVIDs(t, node, "the workload gets its SVID", func(ids []string) bool { return slices.Contains(ids, batch) })

	p := newProvider(t, Config{Socket: srv.Socket})
	req := response.Request{ID: "ban-node", Action: response.ActionDisable, Target: response.Target{
		Identity: schemas.Identity{ID: batch, Kind: schemas.KindWorkload}, Agent: node.ID,
	}}
	if err := p.Check(req.Action, req.Target); err != nil {
		t.Fatalf("Check: %v", err)
	}
	done, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	t.Logf("Do: %s", done.Detail)
	if !getAgent(t, srv, node.ID).GetBanned() {
		t.Fatal("agent not banned after Do")
	}
	select {
	case <-node.Exited():
	case <-time.After(svidTimeout):
		t.Fatalf("banned agent still running after %s; log:\n%s", svidTimeout, node.Log())
	}
	if log := node.Log(); !strings.Contains(log, "Agent is banned") {
		t.Fatalf("agent exited, but not for the ban; log:\n%s", log)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if ids, err := node.FetchX509(ctx); err == nil {
		t.Fatalf("workload still fetched %v from the banned agent", ids)
	}

	again, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("Do again: %v", err)
	}
	if again.Undo[undoBannedBefore] != "true" {
		t.Fatalf("Do again: undo = %v, want banned_before", again.Undo)
	}
	// The second Do found the ban in place, so its undo must keep it.
	if _, err := p.Undo(t.Context(), req, again); err != nil {
		t.Fatalf("Undo of the second Do: %v", err)
	}
	if !getAgent(t, srv, node.ID).GetBanned() {
		t.Fatal("the second Do's undo lifted a ban it did not set")
	}
	for i := range 2 {
		undone, err := p.Undo(t.Context(), req, done)
		if err != nil {
			t.Fatalf("Undo %d: %v", i+1, err)
		}
		t.Logf("Undo %d: %s", i+1, undone.Detail)
		_, err = srv.Agents.GetAgent(t.Context(), &agentv1.GetAgentRequest{Id: mustParse(t, node.ID)})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("GetAgent after Undo %d: %v, want NotFound (ban lifted, agent evicted)", i+1, err)
		}
	}
}

func TestRealPermanentErrors(t *testing.T) {
	srv := spiretest.Shared(t)
	p := newProvider(t, Config{Socket: srv.Socket})
	tests := []struct {
		name string
		req  response.Request
		code codes.Code
	}{
		{"malformed workload id", response.Request{Action: response.ActionRevoke, Target: response.Target{
			Identity: schemas.Identity{ID: "spiffe://example.org/ns/prod/sa/bad name"}}}, codes.InvalidArgument},
		{"malformed agent id", response.Request{Action: response.ActionDisable, Target: response.Target{
			Agent: "spiffe://example.org/spire/agent/bad name"}}, codes.InvalidArgument},
		{"unknown agent", response.Request{Action: response.ActionDisable, Target: response.Target{
			Agent: "spiffe://example.org/spire/agent/join_token/unknown"}}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := p.Check(tt.req.Action, tt.req.Target); err != nil {
				t.Fatalf("Check: %v (the server, not Check, judges these)", err)
			}
			_, err := p.Do(t.Context(), tt.req)
			if status.Code(err) != tt.code || !response.IsPermanent(err) {
				t.Fatalf("Do: %v, want a Permanent %s", err, tt.code)
			}
		})
	}
}

func createEntries(t *testing.T, srv *spiretest.Server, entries ...*types.Entry) {
	t.Helper()
	resp, err := srv.Entries.BatchCreateEntry(t.Context(), &entryv1.BatchCreateEntryRequest{Entries: entries})
	if err != nil {
		t.Fatalf("create entries: %v", err)
	}
	for _, r := range resp.GetResults() {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK {
			t.Fatalf("create entry: %s %s", c, r.GetStatus().GetMessage())
		}
	}
}

func listEntries(t *testing.T, srv *spiretest.Server, id string) []*types.Entry {
	t.Helper()
	resp, err := srv.Entries.ListEntries(t.Context(), &entryv1.ListEntriesRequest{Filter: &entryv1.ListEntriesRequest_Filter{BySpiffeId: mustParse(t, id)}})
	if err != nil {
		t.Fatalf("list entries of %s: %v", id, err)
	}
	return resp.GetEntries()
}

// sameEntries compares entries by everything but what the server sets on
// creation (revision, creation time), in id order.
func sameEntries(a, b []*types.Entry) bool {
	norm := func(es []*types.Entry) []*types.Entry {
		out := make([]*types.Entry, 0, len(es))
		for _, e := range es {
			e = proto.Clone(e).(*types.Entry)
			e.RevisionNumber, e.CreatedAt = 0, 0
			out = append(out, e)
		}
		slices.SortFunc(out, func(x, y *types.Entry) int { return strings.Compare(x.GetId(), y.GetId()) })
		return out
	}
	return slices.EqualFunc(norm(a), norm(b), func(x, y *types.Entry) bool { return proto.Equal(x, y) })
}

func getAgent(t *testing.T, srv *spiretest.Server, id string) *types.Agent {
	t.Helper()
	a, err := srv.Agents.GetAgent(t.Context(), &agentv1.GetAgentRequest{Id: mustParse(t, id)})
	if err != nil {
		t.Fatalf("get agent %s: %v", id, err)
	}
	return a
}

// waitSVIDs polls the agent's Workload API until the SPIFFE ids it issues
// to this process satisfy ok.
func waitSVIDs(t *testing.T, a *spiretest.Agent, what string, ok func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(svidTimeout)
	var ids []string
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ids, err = a.FetchX509(ctx)
		cancel()
		if err == nil && ok(ids) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last fetch: %v, %v; agent log:\n%s", what, svidTimeout, ids, err, a.Log())
}

func mustParse(t *testing.T, s string) *types.SPIFFEID {
	t.Helper()
	id, err := parseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
