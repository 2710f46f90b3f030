package rules

import (
	"math"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// varID indexes the variables a rule can read. Each variable is declared to
// CEL under its full dotted name with a scalar type: the checker then resolves
// `event.action` to the variable "event.action" and the activation answers
// with one typed value, which is about 5x cheaper than adapting nested maps
// (research/performance.md §2).
type varID int

const (
	vEventID varID = iota
	vEventAction
	vEventService
	vEventSourceFamily
	vEventSourceFormat
	vEventSourceAccount
	vEventSourceRegion
	vEventSourceCluster
	vEventIdentityID
	vEventIdentityKind
	vEventActorIP
	vEventActorUserAgent
	vEventActorWorkload
	vEventActorNamespace
	vEventActorPeer
	vEventActorNetwork
	vEventTargetResource
	vEventTargetPeer
	vEventOutcomeResult
	vEventOutcomeStatus
	vEventOutcomeErrorCode
	vEventBytesIn
	vEventBytesOut
	vEventDurationMS
	vEventTime
	vEventCredentialID
	vEventCredentialType
	vEventCredentialIssuedAt
	vEventCredentialExpiresAt
	vEventIdentityName
	vEventSourceProvider
	vEventActorNode
	vEventActorSession
	vEventIssuanceCredential
	vEventIssuanceCredentialType
	vEventIssuanceSubject
	vEventIssuanceSANs
	vEventIssuanceIssuer
	vEventIssuanceTTL
	vEventIssuanceRequester
	vIdentityID
	vIdentityKind
	vIdentityName
	vIdentityClass
	vIdentityCohort
	vIdentityLearning
	vIdentityRelearning
	vIdentityFirstSeen
	vIdentityLastSeen
	vIdentityDormantFor
	vBaselineEvents
	vBaselineHourlyMean
	vBaselineHourlySD
	vBaselineActionKnown
	vBaselinePeerKnown
	vBaselineNetworkKnown
	vBaselineKnownActions
	vBaselineKnownPeers
	vBaselineKnownNetworks
	vBaselineHasModel
	vBaselineHourlyCentre
	vBaselineHourlySpread
	vBaselineActiveShare
	vBaselineDeniedRatio
	vBaselineFailureRatio
	vBaselineBytesOutP50
	vBaselineBytesOutP90
	vBaselineBytesOutP99
	vBaselineBytesOutMax
	vBaselineIssuanceTTL
	vBaselineFanIn
	vBaselineFanOut
	vBaselineCohortMembers
	vBaselineCohortRate
	vWindowCount
	vWindowDenied
	vWindowFailures
	vWindowBytesOut
	vWindowNewActions
	vWindowNewPeers
	vNow
	numVars
)

// variables is the one table of names and types; the CEL declarations and
// the activation's name lookup both derive from it.
var variables = [numVars]struct {
	name string
	typ  *cel.Type
}{
	vEventID:                     {"event.id", cel.StringType},
	vEventAction:                 {"event.action", cel.StringType},
	vEventService:                {"event.service", cel.StringType},
	vEventSourceFamily:           {"event.source.family", cel.StringType},
	vEventSourceFormat:           {"event.source.format", cel.StringType},
	vEventSourceAccount:          {"event.source.account", cel.StringType},
	vEventSourceRegion:           {"event.source.region", cel.StringType},
	vEventSourceCluster:          {"event.source.cluster", cel.StringType},
	vEventIdentityID:             {"event.identity.id", cel.StringType},
	vEventIdentityKind:           {"event.identity.kind", cel.StringType},
	vEventActorIP:                {"event.actor.ip", cel.StringType},
	vEventActorUserAgent:         {"event.actor.user_agent", cel.StringType},
	vEventActorWorkload:          {"event.actor.workload", cel.StringType},
	vEventActorNamespace:         {"event.actor.namespace", cel.StringType},
	vEventActorPeer:              {"event.actor.peer", cel.StringType},
	vEventActorNetwork:           {"event.actor.network", cel.StringType},
	vEventTargetResource:         {"event.target.resource", cel.StringType},
	vEventTargetPeer:             {"event.target.peer", cel.StringType},
	vEventOutcomeResult:          {"event.outcome.result", cel.StringType},
	vEventOutcomeStatus:          {"event.outcome.status", cel.IntType},
	vEventOutcomeErrorCode:       {"event.outcome.error_code", cel.StringType},
	vEventBytesIn:                {"event.bytes_in", cel.IntType},
	vEventBytesOut:               {"event.bytes_out", cel.IntType},
	vEventDurationMS:             {"event.duration_ms", cel.DoubleType},
	vEventTime:                   {"event.time", cel.TimestampType},
	vEventCredentialID:           {"event.credential.id", cel.StringType},
	vEventCredentialType:         {"event.credential.type", cel.StringType},
	vEventCredentialIssuedAt:     {"event.credential.issued_at", cel.TimestampType},
	vEventCredentialExpiresAt:    {"event.credential.expires_at", cel.TimestampType},
	vEventIdentityName:           {"event.identity.name", cel.StringType},
	vEventSourceProvider:         {"event.source.provider", cel.StringType},
	vEventActorNode:              {"event.actor.node", cel.StringType},
	vEventActorSession:           {"event.actor.session", cel.StringType},
	vEventIssuanceCredential:     {"event.issuance.credential", cel.StringType},
	vEventIssuanceCredentialType: {"event.issuance.credential_type", cel.StringType},
	vEventIssuanceSubject:        {"event.issuance.subject", cel.StringType},
	vEventIssuanceSANs:           {"event.issuance.sans", cel.ListType(cel.StringType)},
	vEventIssuanceIssuer:         {"event.issuance.issuer", cel.StringType},
	vEventIssuanceTTL:            {"event.issuance.ttl_seconds", cel.IntType},
	vEventIssuanceRequester:      {"event.issuance.requester", cel.StringType},
	vIdentityID:                  {"identity.id", cel.StringType},
	vIdentityKind:                {"identity.kind", cel.StringType},
	vIdentityName:                {"identity.name", cel.StringType},
	vIdentityClass:               {"identity.class", cel.StringType},
	vIdentityCohort:              {"identity.cohort", cel.StringType},
	vIdentityLearning:            {"identity.learning", cel.BoolType},
	vIdentityRelearning:          {"identity.relearning", cel.BoolType},
	vIdentityFirstSeen:           {"identity.first_seen", cel.TimestampType},
	vIdentityLastSeen:            {"identity.last_seen", cel.TimestampType},
	vIdentityDormantFor:          {"identity.dormant_for", cel.DurationType},
	vBaselineEvents:              {"baseline.events", cel.IntType},
	vBaselineHourlyMean:          {"baseline.hourly_mean", cel.DoubleType},
	vBaselineHourlySD:            {"baseline.hourly_sd", cel.DoubleType},
	vBaselineActionKnown:         {"baseline.action_known", cel.BoolType},
	vBaselinePeerKnown:           {"baseline.peer_known", cel.BoolType},
	vBaselineNetworkKnown:        {"baseline.network_known", cel.BoolType},
	vBaselineKnownActions:        {"baseline.known_actions", cel.IntType},
	vBaselineKnownPeers:          {"baseline.known_peers", cel.IntType},
	vBaselineKnownNetworks:       {"baseline.known_networks", cel.IntType},
	vBaselineHasModel:            {"baseline.has_model", cel.BoolType},
	vBaselineHourlyCentre:        {"baseline.hourly_centre", cel.DoubleType},
	vBaselineHourlySpread:        {"baseline.hourly_spread", cel.DoubleType},
	vBaselineActiveShare:         {"baseline.active_share", cel.DoubleType},
	vBaselineDeniedRatio:         {"baseline.denied_ratio", cel.DoubleType},
	vBaselineFailureRatio:        {"baseline.failure_ratio", cel.DoubleType},
	vBaselineBytesOutP50:         {"baseline.bytes_out_p50", cel.DoubleType},
	vBaselineBytesOutP90:         {"baseline.bytes_out_p90", cel.DoubleType},
	vBaselineBytesOutP99:         {"baseline.bytes_out_p99", cel.DoubleType},
	vBaselineBytesOutMax:         {"baseline.bytes_out_max", cel.DoubleType},
	vBaselineIssuanceTTL:         {"baseline.issuance_ttl", cel.DoubleType},
	vBaselineFanIn:               {"baseline.fan_in", cel.IntType},
	vBaselineFanOut:              {"baseline.fan_out", cel.IntType},
	vBaselineCohortMembers:       {"baseline.cohort_members", cel.IntType},
	vBaselineCohortRate:          {"baseline.cohort_rate", cel.DoubleType},
	vWindowCount:                 {"window.count", cel.IntType},
	vWindowDenied:                {"window.denied", cel.IntType},
	vWindowFailures:              {"window.failures", cel.IntType},
	vWindowBytesOut:              {"window.bytes_out", cel.IntType},
	vWindowNewActions:            {"window.new_actions", cel.IntType},
	vWindowNewPeers:              {"window.new_peers", cel.IntType},
	vNow:                         {"now", cel.TimestampType},
}

var varIndex = func() map[string]varID {
	m := make(map[string]varID, numVars)
	for i, v := range variables {
		m[v.name] = varID(i)
	}
	return m
}()

func varDecls() []cel.EnvOption {
	opts := make([]cel.EnvOption, 0, numVars)
	for _, v := range variables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	return opts
}

// activation answers the variables for one event. It is shared by every rule
// evaluated on that event and caches each value the first time a rule asks:
// boxing a string into a ref.Val allocates, and the baseline lookups (hash
// probes, a 168-hour scan for the hourly stats) should run once per event, not
// once per rule.
type activation struct {
	in   *detectors.Input
	vals [numVars]ref.Val

	statsDone bool
	mean, sd  float64
	hours     int
	network   string
	netDone   bool

	// knowsFn and cohortFn are the late-bound baseline lookups bound to
	// this activation; they survive release so pooled activations reuse
	// them.
	knowsFn, cohortFn functions.LateBoundOp
}

var activations = sync.Pool{New: func() any { return new(activation) }}

func newActivation(in *detectors.Input) *activation {
	a := activations.Get().(*activation)
	a.in = in
	return a
}

// release clears the activation so the pool holds no reference to the event.
func (a *activation) release() {
	k, c := a.knowsFn, a.cohortFn
	*a = activation{knowsFn: k, cohortFn: c}
	activations.Put(a)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	id, ok := varIndex[name]
	if !ok {
		return nil, false
	}
	if v := a.vals[id]; v != nil {
		return v, true
	}
	v := a.value(id)
	a.vals[id] = v
	return v, true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) value(id varID) ref.Val {
	ev, p, w := a.in.Event, a.in.Profile, a.in.Window
	switch id {
	case vEventID:
		return types.String(ev.ID)
	case vEventAction:
		return types.String(ev.Action)
	case vEventService:
		return types.String(ev.Service)
	case vEventSourceFamily:
		return types.String(ev.Source.Family)
	case vEventSourceFormat:
		return types.String(ev.Source.Format)
	case vEventSourceAccount:
		return types.String(ev.Source.Account)
	case vEventSourceRegion:
		return types.String(ev.Source.Region)
	case vEventSourceCluster:
		return types.String(ev.Source.Cluster)
	case vEventIdentityID, vIdentityID:
		return types.String(ev.Identity.ID)
	case vEventIdentityKind, vIdentityKind:
		return types.String(ev.Identity.Kind)
	case vEventActorIP:
		return types.String(ev.Actor.IP)
	case vEventActorUserAgent:
		return types.String(ev.Actor.UserAgent)
	case vEventActorWorkload:
		return types.String(ev.Actor.Workload)
	case vEventActorNamespace:
		return types.String(ev.Actor.Namespace)
	case vEventActorPeer:
		return types.String(ev.Actor.Peer)
	case vEventActorNetwork:
		return types.String(a.net())
	case vEventTargetResource:
		return types.String(ev.Target.Resource)
	case vEventTargetPeer:
		return types.String(ev.Target.Peer)
	case vEventOutcomeResult:
		return types.String(ev.Outcome.Result)
	case vEventOutcomeStatus:
		return types.Int(ev.Outcome.Status)
	case vEventOutcomeErrorCode:
		return types.String(ev.Outcome.ErrorCode)
	case vEventBytesIn:
		return uintVal(ev.BytesIn)
	case vEventBytesOut:
		return uintVal(ev.BytesOut)
	case vEventDurationMS:
		return types.Double(ev.DurationMS)
	case vEventTime:
		return types.Timestamp{Time: ev.Time.Time}
	case vEventCredentialID:
		return types.String(ev.Credential.ID)
	case vEventCredentialType:
		return types.String(ev.Credential.Type)
	case vEventCredentialIssuedAt:
		return optionalTime(ev.Credential.IssuedAt.Time)
	case vEventCredentialExpiresAt:
		return optionalTime(ev.Credential.ExpiresAt.Time)
	case vEventIdentityName, vIdentityName:
		return types.String(ev.Identity.Name)
	case vEventSourceProvider:
		return types.String(ev.Source.Provider)
	case vEventActorNode:
		return types.String(ev.Actor.Node)
	case vEventActorSession:
		return types.String(ev.Actor.Session)
	case vEventIssuanceCredential, vEventIssuanceCredentialType, vEventIssuanceSubject, vEventIssuanceSANs,
		vEventIssuanceIssuer, vEventIssuanceTTL, vEventIssuanceRequester:
		return issuanceValue(id, ev.Issuance)
	case vIdentityClass:
		if p != nil && p.Class() != nil {
			return types.String(p.Class().Name)
		}
		return types.String(baseline.ClassService)
	case vIdentityCohort:
		if p == nil {
			return types.String("")
		}
		return types.String(p.Cohort())
	case vIdentityLearning:
		return types.Bool(a.in.Learning)
	case vIdentityRelearning:
		return types.Bool(a.in.Relearning)
	case vIdentityFirstSeen:
		if p == nil || p.Events == 0 {
			return types.Timestamp{Time: ev.Time.Time}
		}
		return types.Timestamp{Time: p.FirstSeen}
	case vIdentityLastSeen:
		if p == nil || p.Events == 0 {
			return types.Timestamp{Time: ev.Time.Time}
		}
		return types.Timestamp{Time: p.LastSeen}
	case vIdentityDormantFor:
		if p == nil || p.Events == 0 || !ev.Time.After(p.LastSeen) {
			return types.Duration{}
		}
		return types.Duration{Duration: ev.Time.Sub(p.LastSeen)}
	case vBaselineEvents:
		if p == nil {
			return types.IntZero
		}
		return uintVal(p.Events)
	case vBaselineHourlyMean:
		a.stats()
		return types.Double(a.mean)
	case vBaselineHourlySD:
		a.stats()
		return types.Double(a.sd)
	case vBaselineActionKnown:
		return types.Bool(a.knows(baseline.DimAction, ev.Action))
	case vBaselinePeerKnown:
		return types.Bool(a.knows(baseline.DimPeer, ev.Target.Peer))
	case vBaselineNetworkKnown:
		return types.Bool(a.knows(baseline.DimNetwork, a.net()))
	case vBaselineKnownActions:
		if p == nil {
			return types.IntZero
		}
		return types.Int(p.KnownCount(baseline.DimAction))
	case vBaselineKnownPeers:
		if p == nil {
			return types.IntZero
		}
		return types.Int(p.KnownCount(baseline.DimPeer))
	case vBaselineKnownNetworks:
		if p == nil {
			return types.IntZero
		}
		return types.Int(p.KnownCount(baseline.DimNetwork))
	case vBaselineHasModel:
		return types.Bool(a.model() != nil)
	case vBaselineHourlyCentre, vBaselineHourlySpread, vBaselineActiveShare, vBaselineDeniedRatio, vBaselineFailureRatio,
		vBaselineBytesOutP50, vBaselineBytesOutP90, vBaselineBytesOutP99, vBaselineBytesOutMax, vBaselineIssuanceTTL:
		return types.Double(a.modelValue(id))
	case vBaselineFanIn:
		if m := a.model(); m != nil {
			return types.Int(m.FanIn)
		}
		return types.IntZero
	case vBaselineFanOut:
		if m := a.model(); m != nil {
			return types.Int(m.FanOut)
		}
		return types.IntZero
	case vBaselineCohortMembers:
		if c := a.in.Cohort; c != nil {
			return types.Int(c.Members)
		}
		return types.IntZero
	case vBaselineCohortRate:
		if c := a.in.Cohort; c != nil {
			return types.Double(c.Rate)
		}
		return types.Double(0)
	case vWindowCount:
		return types.Int(w.Count)
	case vWindowDenied:
		return types.Int(w.Denied)
	case vWindowFailures:
		return types.Int(w.Failures)
	case vWindowBytesOut:
		return uintVal(w.BytesOut)
	case vWindowNewActions:
		return types.Int(w.NewActions)
	case vWindowNewPeers:
		return types.Int(w.NewPeers)
	case vNow:
		return types.Timestamp{Time: a.in.Now}
	}
	// Unreachable while value covers every varID; TestEveryVariable checks it.
	return types.NewErr("rules: variable %d has no resolver", id)
}

// epoch stands for an unknown time: CEL timestamps cannot be Go's zero
// time without surprising comparisons, and `timestamp(0)` is easy to write.
var epoch = time.Unix(0, 0).UTC()

func optionalTime(t time.Time) types.Timestamp {
	if t.IsZero() {
		return types.Timestamp{Time: epoch}
	}
	return types.Timestamp{Time: t}
}

// issuanceValue answers the event.issuance.* variables: empty strings, 0 and
// an empty list for an event that issued nothing.
func issuanceValue(id varID, is *schemas.Issuance) ref.Val {
	if is == nil {
		is = &noIssuance
	}
	switch id {
	case vEventIssuanceCredential:
		return types.String(is.Credential)
	case vEventIssuanceCredentialType:
		return types.String(is.CredentialType)
	case vEventIssuanceSubject:
		return types.String(is.Subject)
	case vEventIssuanceSANs:
		return types.NewStringList(types.DefaultTypeAdapter, is.SANs)
	case vEventIssuanceIssuer:
		return types.String(is.Issuer)
	case vEventIssuanceTTL:
		return types.Int(is.TTLSeconds)
	}
	return types.String(is.Requester)
}

var noIssuance schemas.Issuance

// model is the identity's built model, nil before its first rebuild.
func (a *activation) model() *baseline.Model {
	if a.in.Profile == nil {
		return nil
	}
	return a.in.Profile.Model()
}

// modelValue answers the model-derived baseline.* doubles: 0 without a
// model (rules guard with baseline.has_model).
func (a *activation) modelValue(id varID) float64 {
	m := a.model()
	if m == nil {
		return 0
	}
	t := a.in.Event.Time.Time
	switch id {
	case vBaselineHourlyCentre:
		return m.Centre(baseline.HourOfWeek(t))
	case vBaselineHourlySpread:
		return m.Spread(baseline.HourOfWeek(t))
	case vBaselineActiveShare:
		return m.Active(t)
	case vBaselineDeniedRatio:
		return float64(m.DeniedRatio)
	case vBaselineFailureRatio:
		return float64(m.FailureRatio)
	case vBaselineBytesOutP50:
		return float64(m.BytesOut.P50)
	case vBaselineBytesOutP90:
		return float64(m.BytesOut.P90)
	case vBaselineBytesOutP99:
		return float64(m.BytesOut.P99)
	case vBaselineBytesOutMax:
		return float64(m.BytesOut.Max)
	case vBaselineIssuanceTTL:
		if m.Issuance != nil {
			return m.Issuance.TTL
		}
	}
	return 0
}

// knows reports whether the profile has seen v. An empty value (no peer on a
// cloud audit event, an unparsable IP) counts as known so that rules written
// as `!baseline.network_known` do not fire on missing data.
func (a *activation) knows(d baseline.Dim, v string) bool {
	if v == "" || a.in.Profile == nil {
		return v == ""
	}
	return a.in.Profile.Knows(d, v)
}

func (a *activation) net() string {
	if !a.netDone {
		a.network, a.netDone = baseline.Network(a.in.Event.Actor.IP), true
	}
	return a.network
}

// stats computes the hourly mean and sd over the hours before the event's
// hour, so the hour under test never dilutes its own baseline.
func (a *activation) stats() {
	if a.statsDone {
		return
	}
	a.statsDone = true
	if a.in.Profile != nil {
		a.mean, a.sd, a.hours = a.in.Profile.HourlyStats(a.in.Event.Time.Truncate(time.Hour))
	}
}

// uintVal converts a counter to a CEL int, saturating rather than wrapping
// negative for values past int64.
func uintVal(v uint64) types.Int {
	if v > math.MaxInt64 {
		return types.Int(math.MaxInt64)
	}
	return types.Int(v)
}
