package baseline

import (
	"hash/maphash"
	"math"
	"net/netip"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Dim is a categorical dimension whose known values a Profile tracks.
type Dim uint8

// Tracked dimensions.
const (
	DimAction     Dim = iota // normalized action, e.g. s3:GetObject
	DimResource              // target resource
	DimPeer                  // upstream peer identity (mesh call graph)
	DimNetwork               // source network: /24 for IPv4, /64 for IPv6
	DimUserAgent             // actor user agent
	DimRegion                // source region
	DimCluster               // cluster/namespace the identity acts in
	DimIssuer                // issuer of credentials issued to the identity
	DimCredential            // credential id in use
	DimEdge                  // mesh edge: peer and route, "peer route"
	NumDims
)

var dimNames = [NumDims]string{"action", "resource", "peer", "network", "user_agent", "region", "cluster", "issuer", "credential", "edge"}

// String returns the dimension's name as used in findings, storage and
// configuration.
func (d Dim) String() string {
	if d < NumDims {
		return dimNames[d]
	}
	return "unknown"
}

// ParseDim is the inverse of Dim.String.
func ParseDim(s string) (Dim, bool) {
	for d, n := range dimNames {
		if n == s {
			return Dim(d), true
		}
	}
	return 0, false
}

// HistoryHours is how many hourly counts a Profile keeps: one week, the
// period of the seasonality machines show (weekday batch jobs, business hours
// of their callers).
const HistoryHours = 168

// seed is process-wide so the same value always hashes the same way within a
// process; hashes are never persisted.
var seed = maphash.MakeSeed()

// ValueHash is the key a known set stores for a value. Sets keep 64-bit
// hashes instead of strings to keep a profile small.
func ValueHash(v string) uint64 { return maphash.String(seed, v) }

// Profile is one identity's baseline. It is owned by a Cache and must only be
// used under the Cache's lock for that identity.
type Profile struct {
	Identity  schemas.Identity
	FirstSeen time.Time
	LastSeen  time.Time
	Events    uint64

	known [NumDims]knownSet

	// hours is a ring of hourly event counts indexed by absolute hour modulo
	// HistoryHours; hourStamp says which absolute hour each slot holds, so
	// stale slots read as zero.
	hours     [HistoryHours]uint32
	hourStamp [HistoryHours]int64

	// window holds the counters of the hour the latest event fell in.
	window Window
}

// Window is the activity of one identity in the current hour.
type Window struct {
	Hour     int64 // absolute hour (Unix seconds / 3600)
	Count    uint32
	Denied   uint32
	Failures uint32
	BytesOut uint64
}

// knownSet is a set of value hashes with the time the set last grew, which
// measures how stable the set is.
type knownSet struct {
	values   map[uint64]struct{}
	lastGrew time.Time
}

func (s *knownSet) add(h uint64, at time.Time) bool {
	if s.values == nil {
		s.values = make(map[uint64]struct{}, 8)
	}
	if _, ok := s.values[h]; ok {
		return false
	}
	s.values[h] = struct{}{}
	if at.After(s.lastGrew) {
		s.lastGrew = at
	}
	return true
}

// Knows reports whether v has been seen in dimension d.
func (p *Profile) Knows(d Dim, v string) bool {
	_, ok := p.known[d].values[ValueHash(v)]
	return ok
}

// KnownCount is the size of dimension d's known set.
func (p *Profile) KnownCount(d Dim) int { return len(p.known[d].values) }

// LastGrew is when dimension d's known set last gained a value.
func (p *Profile) LastGrew(d Dim) time.Time { return p.known[d].lastGrew }

// Window returns the counters of the hour containing t (zero when the
// profile's current window is another hour).
func (p *Profile) Window(t time.Time) Window {
	h := t.Unix() / 3600
	if p.window.Hour != h {
		return Window{Hour: h}
	}
	return p.window
}

// HourlyStats returns the mean and standard deviation of the hourly event
// counts over the hours in [max(FirstSeen, before−HistoryHours), before),
// counting hours without activity as zero, and how many hours that spans.
func (p *Profile) HourlyStats(before time.Time) (mean, sd float64, hours int) {
	end := before.Unix() / 3600
	start := p.FirstSeen.Unix() / 3600
	if end-start > HistoryHours {
		start = end - HistoryHours
	}
	if end <= start {
		return 0, 0, 0
	}
	var sum, sumSq float64
	for h := start; h < end; h++ {
		c := float64(p.hourCount(h))
		sum += c
		sumSq += c * c
	}
	n := float64(end - start)
	mean = sum / n
	return mean, math.Sqrt(math.Max(0, sumSq/n-mean*mean)), int(end - start)
}

// SameHourMax is the largest count in the same hour of day as hour (an
// absolute hour) on the previous days the ring holds: the daily rhythm of a
// nightly job or of business-hours callers.
func (p *Profile) SameHourMax(hour int64) uint32 {
	var m uint32
	for d := int64(1); d*24 < HistoryHours; d++ {
		m = max(m, p.hourCount(hour-24*d))
	}
	return m
}

func (p *Profile) hourCount(h int64) uint32 {
	i := h % HistoryHours
	if p.hourStamp[i] != h {
		return 0
	}
	return p.hours[i]
}

// Observe folds an event into the profile. It is called after detection, so
// detectors see the state before the event.
func (p *Profile) Observe(ev *schemas.Event) {
	t := ev.Time.Time
	if p.Events == 0 || t.Before(p.FirstSeen) {
		p.FirstSeen = t
	}
	if t.After(p.LastSeen) {
		p.LastSeen = t
	}
	p.Events++
	p.addHour(t.Unix()/3600, 1)
	p.window = p.Window(t)
	p.window.Count++
	switch ev.Outcome.Result {
	case schemas.ResultDenied:
		p.window.Denied++
	case schemas.ResultFailure:
		p.window.Failures++
	}
	p.window.BytesOut += ev.BytesOut
	for d, v := range Values(ev) {
		if v != "" {
			p.known[d].add(ValueHash(v), t)
		}
	}
}

func (p *Profile) addHour(h int64, n uint32) {
	i := h % HistoryHours
	if p.hourStamp[i] != h {
		if h < p.hourStamp[i] {
			return // older than the week the ring holds
		}
		p.hourStamp[i], p.hours[i] = h, 0
	}
	p.hours[i] += n
}

// Values returns the value of every tracked dimension for ev; empty strings
// mean the event has no value in that dimension.
func Values(ev *schemas.Event) [NumDims]string {
	v := [NumDims]string{
		DimAction:     ev.Action,
		DimResource:   ev.Target.Resource,
		DimPeer:       ev.Target.Peer,
		DimNetwork:    Network(ev.Actor.IP),
		DimUserAgent:  ev.Actor.UserAgent,
		DimRegion:     ev.Source.Region,
		DimCluster:    ClusterValue(ev.Source.Cluster, ev.Actor.Namespace),
		DimCredential: ev.Credential.ID,
	}
	if ev.Issuance != nil {
		v[DimIssuer] = ev.Issuance.Issuer
	}
	if ev.Target.Peer != "" {
		v[DimEdge] = ev.Target.Peer + " " + ev.Action
	}
	return v
}

// ClusterValue is the DimCluster value of a cluster and namespace:
// "cluster/namespace", either part possibly empty; "" when both are.
func ClusterValue(cluster, namespace string) string {
	if cluster == "" && namespace == "" {
		return ""
	}
	return cluster + "/" + namespace
}

// Network returns the /24 (IPv4) or /64 (IPv6) prefix of ip, or "" when ip
// does not parse. Workloads move within subnets; a new prefix is what matters.
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	bits := 64
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return pfx.String()
}

// Seed is stored history to fold into a profile when it is loaded: the
// known values per dimension with when each was first seen, and the hourly
// windows.
type Seed struct {
	Identity  schemas.Identity
	FirstSeen time.Time
	LastSeen  time.Time
	Events    uint64
	Known     [NumDims][]SeedValue
	Hourly    []Window
}

// SeedValue is a value of a dimension and when the identity first used it.
type SeedValue struct {
	Value     string
	FirstSeen time.Time
}

// Apply folds stored history into the profile. Applying history the profile
// already holds would count it twice, so a Cache applies a seed only to a
// profile it has just created.
func (p *Profile) Apply(s *Seed) {
	if p.Identity.ID == "" {
		p.Identity = s.Identity
	}
	if p.Events == 0 || (!s.FirstSeen.IsZero() && s.FirstSeen.Before(p.FirstSeen)) {
		p.FirstSeen = s.FirstSeen
	}
	if s.LastSeen.After(p.LastSeen) {
		p.LastSeen = s.LastSeen
	}
	p.Events += s.Events
	for d := range s.Known {
		for _, kv := range s.Known[d] {
			p.known[d].add(ValueHash(kv.Value), kv.FirstSeen)
		}
	}
	for _, w := range s.Hourly {
		p.addHour(w.Hour, w.Count)
		switch {
		case w.Hour > p.window.Hour:
			p.window = w
		case w.Hour == p.window.Hour:
			p.window.Count += w.Count
			p.window.Denied += w.Denied
			p.window.Failures += w.Failures
			p.window.BytesOut += w.BytesOut
		}
	}
}
