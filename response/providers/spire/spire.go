// Package spire is the response provider for a SPIRE server: it revokes a
// workload's identity by deleting its registration entries and disables a
// node by banning its SPIRE agent, through the server's admin gRPC API
// (spire-api-sdk, entry/v1 and agent/v1).
//
// Connection: the server's admin API unix socket (server.socket_path,
// /tmp/spire-server/private/api.sock by default). SPIRE grants every
// caller on that socket local-admin rights, so nhisentry needs only
// filesystem access to the socket (run it on the server host or share the
// socket's folder); a TCP address with an admin X509-SVID (mTLS) is not
// supported yet.
//
// Calls:
//
//   - revoke_credential on a workload (Target.Identity.ID a spiffe:// id):
//     Entry.ListEntries{filter.by_spiffe_id}, then
//     Entry.BatchDeleteEntry{ids}. A per-entry NOT_FOUND means someone
//     deleted it first and counts as done. The deleted entries, whole and
//     with their ids, are kept in Result.Undo, so Undo replays them with
//     Entry.BatchCreateEntry; ALREADY_EXISTS there (an entry with the same
//     SPIFFE id, parent and selectors) counts as done.
//   - disable_identity on an agent (Target.Agent, or Target.Identity.ID of
//     the form spiffe://<td>/spire/agent/...): Agent.GetAgent, then
//     Agent.BanAgent unless it is banned already. The agent loses its
//     identity at its next sync (a few seconds) and exits. Undo lifts the
//     ban with Agent.DeleteAgent (SPIRE's only way to lift one, which
//     also evicts the agent), and only when Do did the banning and the
//     agent is still banned; the agent must then attest again (restart
//     it; a join-token agent needs a new token and comes back under a new
//     id).
//
// gRPC errors InvalidArgument, NotFound, PermissionDenied, Unauthenticated,
// FailedPrecondition and Unimplemented (and the same codes in per-entry
// statuses) are Permanent; the others (Unavailable, DeadlineExceeded,
// ResourceExhausted, Internal, ...) are returned for the executor to retry.
package spire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nhisentry/nhisentry/response"
)

// Config is the SPIRE provider's configuration.
type Config struct {
	// Name is the provider's name in response rules; "spire" when empty.
	Name string `yaml:"name"`
	// Socket is the path of the SPIRE server's admin API unix socket.
	Socket string `yaml:"socket"`
	// Timeout bounds one Do or Undo, all its calls together; 10s when zero.
	Timeout time.Duration `yaml:"timeout"`
}

const (
	defaultName    = "spire"
	defaultTimeout = 10 * time.Second
	// listPageSize keeps each ListEntries reply small; a SPIFFE id rarely
	// has more than a handful of entries.
	listPageSize = 200
)

// Keys of Result.Undo.
const (
	undoSpiffeID     = "spiffe_id"
	undoEntries      = "entries" // protojson of a BatchCreateEntryRequest
	undoAgent        = "agent"
	undoBannedBefore = "banned_before"
)

// Validate reports every problem in c, each prefixed with field.
func (c Config) Validate(field string) []error {
	var errs []error
	switch {
	case c.Socket == "":
		errs = append(errs, fmt.Errorf("%s.socket: required (the SPIRE server's admin API socket, server.socket_path)", field))
	case strings.Contains(c.Socket, "://"):
		errs = append(errs, fmt.Errorf("%s.socket: %q: want a unix socket path; TCP addresses are not supported", field, c.Socket))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must not be negative, got %s", field, c.Timeout))
	}
	return errs
}

// provider talks to one SPIRE server.
type provider struct {
	name    string
	timeout time.Duration
	conn    *grpc.ClientConn
	entries entryv1.EntryClient
	agents  agentv1.AgentClient
}

// New returns a provider for c. It does not connect: the first call does.
// The provider is also an io.Closer that closes its connection.
func New(c Config) (response.Provider, error) {
	if errs := c.Validate("spire"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	conn, err := grpc.NewClient("unix:"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("spire: client for %s: %w", c.Socket, err)
	}
	p := &provider{
		name:    c.Name,
		timeout: c.Timeout,
		conn:    conn,
		entries: entryv1.NewEntryClient(conn),
		agents:  agentv1.NewAgentClient(conn),
	}
	if p.name == "" {
		p.name = defaultName
	}
	if p.timeout == 0 {
		p.timeout = defaultTimeout
	}
	return p, nil
}

// Name is the configured name.
func (p *provider) Name() string { return p.name }

// Close closes the connection to the server.
func (p *provider) Close() error { return p.conn.Close() }

// Check accepts revoke_credential on a workload's SPIFFE id and
// disable_identity on an agent.
func (p *provider) Check(action response.Action, target response.Target) error {
	switch action {
	case response.ActionRevoke:
		_, err := workloadID(target)
		return err
	case response.ActionDisable:
		_, err := agentID(target)
		return err
	default:
		return fmt.Errorf("spire: %s: %w", action, response.ErrNotApplicable)
	}
}

// Do deletes the workload's registration entries or bans the agent.
func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	switch req.Action {
	case response.ActionRevoke:
		id, err := workloadID(req.Target)
		if err != nil {
			return response.Result{}, err
		}
		return p.deleteEntries(ctx, id)
	case response.ActionDisable:
		id, err := agentID(req.Target)
		if err != nil {
			return response.Result{}, err
		}
		return p.banAgent(ctx, id)
	default:
		return response.Result{}, fmt.Errorf("spire: %s: %w", req.Action, response.ErrNotApplicable)
	}
}

// Undo recreates the deleted entries or lifts the ban, from done.Undo.
func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	switch req.Action {
	case response.ActionRevoke:
		return p.restoreEntries(ctx, done.Undo)
	case response.ActionDisable:
		return p.liftBan(ctx, done.Undo)
	default:
		return response.Result{}, fmt.Errorf("spire: undo %s: %w", req.Action, response.ErrIrreversible)
	}
}

func (p *provider) deleteEntries(ctx context.Context, id *types.SPIFFEID) (response.Result, error) {
	sid := formatID(id)
	entries, err := p.listEntries(ctx, id)
	if err != nil {
		return response.Result{}, err
	}
	byID := make(map[string]*types.Entry, len(entries))
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		byID[e.GetId()] = e
		ids = append(ids, e.GetId())
	}
	var deleted []*types.Entry
	if len(ids) > 0 {
		resp, err := p.entries.BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{Ids: ids})
		if err != nil {
			return response.Result{}, classify(fmt.Sprintf("delete entries of %s", sid), err)
		}
		var errs []error
		for _, r := range resp.GetResults() {
			switch code := codes.Code(r.GetStatus().GetCode()); code {
			case codes.OK:
				if e := byID[r.GetId()]; e != nil {
					deleted = append(deleted, e)
				}
			case codes.NotFound: // deleted by someone else meanwhile
			default:
				errs = append(errs, classify(fmt.Sprintf("delete entry %s", r.GetId()), status.Error(code, r.GetStatus().GetMessage())))
			}
		}
		if err := joinClassified(errs); err != nil {
			return response.Result{}, err
		}
	}
	saved, err := protojson.Marshal(&entryv1.BatchCreateEntryRequest{Entries: replayable(deleted)})
	if err != nil {
		return response.Result{}, fmt.Errorf("spire: keep deleted entries of %s: %w", sid, err)
	}
	detail := fmt.Sprintf("deleted %d registration entries of %s", len(deleted), sid)
	if len(deleted) == 0 {
		detail = fmt.Sprintf("no registration entries of %s left to delete", sid)
	}
	return response.Result{
		Detail: detail,
		Undo:   map[string]string{undoSpiffeID: sid, undoEntries: string(saved)},
	}, nil
}

func (p *provider) listEntries(ctx context.Context, id *types.SPIFFEID) ([]*types.Entry, error) {
	var entries []*types.Entry
	req := &entryv1.ListEntriesRequest{
		Filter:   &entryv1.ListEntriesRequest_Filter{BySpiffeId: id},
		PageSize: listPageSize,
	}
	for {
		resp, err := p.entries.ListEntries(ctx, req)
		if err != nil {
			return nil, classify(fmt.Sprintf("list entries of %s", formatID(id)), err)
		}
		entries = append(entries, resp.GetEntries()...)
		if resp.GetNextPageToken() == "" {
			return entries, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// replayable strips what the server assigns on creation from entries, so
// BatchCreateEntry takes them back as they were (ids included).
func replayable(entries []*types.Entry) []*types.Entry {
	out := make([]*types.Entry, 0, len(entries))
	for _, e := range entries {
		e.RevisionNumber = 0
		e.CreatedAt = 0
		out = append(out, e)
	}
	return out
}

func (p *provider) restoreEntries(ctx context.Context, undo map[string]string) (response.Result, error) {
	saved, ok := undo[undoEntries]
	if !ok {
		return response.Result{}, response.Permanent{Err: errors.New("spire: undo: the result has no deleted entries to restore")}
	}
	var req entryv1.BatchCreateEntryRequest
	if err := protojson.Unmarshal([]byte(saved), &req); err != nil {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("spire: undo: read deleted entries: %w", err)}
	}
	sid := undo[undoSpiffeID]
	if len(req.GetEntries()) == 0 {
		return response.Result{Detail: fmt.Sprintf("no registration entries of %s to restore", sid)}, nil
	}
	resp, err := p.entries.BatchCreateEntry(ctx, &req)
	if err != nil {
		return response.Result{}, classify(fmt.Sprintf("recreate entries of %s", sid), err)
	}
	var created, present int
	var errs []error
	for i, r := range resp.GetResults() {
		switch code := codes.Code(r.GetStatus().GetCode()); code {
		case codes.OK:
			created++
		case codes.AlreadyExists:
			present++
		default:
			var id string // results come in the request's order
			if i < len(req.GetEntries()) {
				id = req.GetEntries()[i].GetId()
			}
			errs = append(errs, classify(fmt.Sprintf("recreate entry %q", id), status.Error(code, r.GetStatus().GetMessage())))
		}
	}
	if err := joinClassified(errs); err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: fmt.Sprintf("recreated %d registration entries of %s (%d were already there)", created, sid, present)}, nil
}

func (p *provider) banAgent(ctx context.Context, id *types.SPIFFEID) (response.Result, error) {
	sid := formatID(id)
	banned, err := p.isBanned(ctx, id)
	if err != nil {
		return response.Result{}, err
	}
	undo := map[string]string{undoAgent: sid}
	if banned {
		undo[undoBannedBefore] = "true"
		return response.Result{Detail: fmt.Sprintf("agent %s was already banned", sid), Undo: undo}, nil
	}
	if _, err := p.agents.BanAgent(ctx, &agentv1.BanAgentRequest{Id: id}); err != nil {
		return response.Result{}, classify(fmt.Sprintf("ban agent %s", sid), err)
	}
	return response.Result{Detail: fmt.Sprintf("banned agent %s", sid), Undo: undo}, nil
}

func (p *provider) isBanned(ctx context.Context, id *types.SPIFFEID) (bool, error) {
	agent, err := p.agents.GetAgent(ctx, &agentv1.GetAgentRequest{Id: id, OutputMask: &types.AgentMask{Banned: true}})
	if err != nil {
		return false, classify(fmt.Sprintf("get agent %s", formatID(id)), err)
	}
	return agent.GetBanned(), nil
}

func (p *provider) liftBan(ctx context.Context, undo map[string]string) (response.Result, error) {
	sid := undo[undoAgent]
	if undo[undoBannedBefore] == "true" {
		return response.Result{Detail: fmt.Sprintf("agent %s was banned before this response; the ban stays", sid)}, nil
	}
	id, err := parseID(sid)
	if err != nil {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("spire: undo: agent in the result: %w", err)}
	}
	banned, err := p.isBanned(ctx, id)
	switch {
	case status.Code(err) == codes.NotFound:
		return response.Result{Detail: fmt.Sprintf("agent %s is no longer registered; nothing to lift", sid)}, nil
	case err != nil:
		return response.Result{}, err
	}
	if !banned {
		return response.Result{Detail: fmt.Sprintf("agent %s is not banned; nothing to lift", sid)}, nil
	}
	_, err = p.agents.DeleteAgent(ctx, &agentv1.DeleteAgentRequest{Id: id})
	if err != nil && status.Code(err) != codes.NotFound {
		return response.Result{}, classify(fmt.Sprintf("evict agent %s", sid), err)
	}
	return response.Result{Detail: fmt.Sprintf("lifted the ban on agent %s by evicting it; it must attest again", sid)}, nil
}

// classify wraps a gRPC error with what was being done, marking the codes
// no retry can fix as Permanent.
func classify(op string, err error) error {
	wrapped := fmt.Errorf("spire: %s: %w", op, err)
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.Unimplemented:
		return response.Permanent{Err: wrapped}
	}
	return wrapped
}

// joinClassified joins per-entry errors; the result is Permanent only when
// every one is, so one retryable failure gets the batch retried.
func joinClassified(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs {
		if !response.IsPermanent(err) {
			return errors.Join(errs...)
		}
	}
	return response.Permanent{Err: errors.Join(errs...)}
}

// workloadID is the SPIFFE id whose entries revoke_credential deletes.
func workloadID(t response.Target) (*types.SPIFFEID, error) {
	id, err := parseID(t.Identity.ID)
	if err != nil {
		return nil, fmt.Errorf("spire: identity %q: %w: %w", t.Identity.ID, err, response.ErrNotApplicable)
	}
	if isAgentPath(id.Path) {
		return nil, fmt.Errorf("spire: %s is an agent, which has no registration entries to revoke (disable it): %w", t.Identity.ID, response.ErrNotApplicable)
	}
	return id, nil
}

// agentID is the agent disable_identity bans: Target.Agent, or the
// identity itself when it is an agent.
func agentID(t response.Target) (*types.SPIFFEID, error) {
	raw := t.Agent
	if raw == "" {
		raw = t.Identity.ID
	}
	id, err := parseID(raw)
	if err == nil && !isAgentPath(id.Path) {
		err = errors.New("not an agent id (spiffe://<trust domain>/spire/agent/...)")
	}
	if err != nil {
		return nil, fmt.Errorf("spire: agent %q: %w: %w", raw, err, response.ErrNotApplicable)
	}
	return id, nil
}

// parseID splits spiffe://<td>/<path>. The server checks the rest (allowed
// characters, case), answering InvalidArgument.
func parseID(s string) (*types.SPIFFEID, error) {
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return nil, errors.New("not a spiffe:// id")
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || path == "" {
		return nil, errors.New("want spiffe://<trust domain>/<path>")
	}
	return &types.SPIFFEID{TrustDomain: td, Path: "/" + path}, nil
}

func isAgentPath(path string) bool { return strings.HasPrefix(path, "/spire/agent/") }

func formatID(id *types.SPIFFEID) string {
	return "spiffe://" + id.GetTrustDomain() + id.GetPath()
}
