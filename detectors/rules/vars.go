package rules

import (
	"math"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
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
	vIdentityID
	vIdentityKind
	vIdentityLearning
	vBaselineEvents
	vBaselineHourlyMean
	vBaselineHourlySD
	vBaselineActionKnown
	vBaselinePeerKnown
	vBaselineNetworkKnown
	vBaselineKnownActions
	vWindowCount
	vWindowDenied
	vWindowFailures
	vWindowBytesOut
	vNow
	numVars
)

// variables is the one table of names and types; the CEL declarations and
// the activation's name lookup both derive from it.
var variables = [numVars]struct {
	name string
	typ  *cel.Type
}{
	vEventID:               {"event.id", cel.StringType},
	vEventAction:           {"event.action", cel.StringType},
	vEventService:          {"event.service", cel.StringType},
	vEventSourceFamily:     {"event.source.family", cel.StringType},
	vEventSourceFormat:     {"event.source.format", cel.StringType},
	vEventSourceAccount:    {"event.source.account", cel.StringType},
	vEventSourceRegion:     {"event.source.region", cel.StringType},
	vEventSourceCluster:    {"event.source.cluster", cel.StringType},
	vEventIdentityID:       {"event.identity.id", cel.StringType},
	vEventIdentityKind:     {"event.identity.kind", cel.StringType},
	vEventActorIP:          {"event.actor.ip", cel.StringType},
	vEventActorUserAgent:   {"event.actor.user_agent", cel.StringType},
	vEventActorWorkload:    {"event.actor.workload", cel.StringType},
	vEventActorNamespace:   {"event.actor.namespace", cel.StringType},
	vEventActorPeer:        {"event.actor.peer", cel.StringType},
	vEventActorNetwork:     {"event.actor.network", cel.StringType},
	vEventTargetResource:   {"event.target.resource", cel.StringType},
	vEventTargetPeer:       {"event.target.peer", cel.StringType},
	vEventOutcomeResult:    {"event.outcome.result", cel.StringType},
	vEventOutcomeStatus:    {"event.outcome.status", cel.IntType},
	vEventOutcomeErrorCode: {"event.outcome.error_code", cel.StringType},
	vEventBytesIn:          {"event.bytes_in", cel.IntType},
	vEventBytesOut:         {"event.bytes_out", cel.IntType},
	vEventDurationMS:       {"event.duration_ms", cel.DoubleType},
	vEventTime:             {"event.time", cel.TimestampType},
	vEventCredentialID:     {"event.credential.id", cel.StringType},
	vEventCredentialType:   {"event.credential.type", cel.StringType},
	vIdentityID:            {"identity.id", cel.StringType},
	vIdentityKind:          {"identity.kind", cel.StringType},
	vIdentityLearning:      {"identity.learning", cel.BoolType},
	vBaselineEvents:        {"baseline.events", cel.IntType},
	vBaselineHourlyMean:    {"baseline.hourly_mean", cel.DoubleType},
	vBaselineHourlySD:      {"baseline.hourly_sd", cel.DoubleType},
	vBaselineActionKnown:   {"baseline.action_known", cel.BoolType},
	vBaselinePeerKnown:     {"baseline.peer_known", cel.BoolType},
	vBaselineNetworkKnown:  {"baseline.network_known", cel.BoolType},
	vBaselineKnownActions:  {"baseline.known_actions", cel.IntType},
	vWindowCount:           {"window.count", cel.IntType},
	vWindowDenied:          {"window.denied", cel.IntType},
	vWindowFailures:        {"window.failures", cel.IntType},
	vWindowBytesOut:        {"window.bytes_out", cel.IntType},
	vNow:                   {"now", cel.TimestampType},
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
}

var activations = sync.Pool{New: func() any { return new(activation) }}

func newActivation(in *detectors.Input) *activation {
	a := activations.Get().(*activation)
	a.in = in
	return a
}

// release clears the activation so the pool holds no reference to the event.
func (a *activation) release() {
	*a = activation{}
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
	case vIdentityLearning:
		return types.Bool(a.in.Learning)
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
	case vWindowCount:
		return types.Int(w.Count)
	case vWindowDenied:
		return types.Int(w.Denied)
	case vWindowFailures:
		return types.Int(w.Failures)
	case vWindowBytesOut:
		return uintVal(w.BytesOut)
	case vNow:
		return types.Timestamp{Time: a.in.Now}
	}
	// Unreachable while value covers every varID; TestEveryVariable checks it.
	return types.NewErr("rules: variable %d has no resolver", id)
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
