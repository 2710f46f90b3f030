package baseline

import (
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"
	"unsafe"

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

// MaxKnown bounds each known set of a cached Profile. A dimension with more
// values (every S3 object a data pipeline touches, say) is open: its values
// say nothing about normal behaviour, so it stops growing and every value
// counts as known, which keeps memory bounded and spares the SOC a finding
// per object.
const MaxKnown = 1024

// seed is process-wide so the same value always hashes the same way within a
// process; hashes are never persisted.
var seed = maphash.MakeSeed()

// knownKey is the key a known set stores for a value of dimension d: a 60-bit
// hash of the value with the dimension in the top 4 bits, so one sorted
// slice holds every dimension, grouped.
func knownKey(d Dim, v string) uint64 {
	return withDim(d, maphash.String(seed, v))
}

func withDim(d Dim, h uint64) uint64 { return h>>4 | uint64(d)<<60 }

// eventKeys computes knownKey(d, Values(ev)[d]) for every dimension without
// building the derived strings (network, cluster, edge): hashing their
// parts in sequence gives the hash of the concatenation. Zero means the
// event has no value in that dimension.
func eventKeys(ev *schemas.Event) [NumDims]uint64 {
	var k [NumDims]uint64
	str := func(d Dim, v string) {
		if v != "" {
			k[d] = knownKey(d, v)
		}
	}
	str(DimAction, ev.Action)
	str(DimResource, ev.Target.Resource)
	str(DimPeer, ev.Target.Peer)
	str(DimUserAgent, ev.Actor.UserAgent)
	str(DimRegion, ev.Source.Region)
	str(DimCredential, ev.Credential.ID)
	if ev.Issuance != nil {
		str(DimIssuer, ev.Issuance.Issuer)
	}
	var h maphash.Hash
	h.SetSeed(seed)
	if pfx, ok := networkOf(ev.Actor.IP); ok {
		var buf [64]byte
		h.Write(pfx.AppendTo(buf[:0]))
		k[DimNetwork] = withDim(DimNetwork, h.Sum64())
	}
	if c, ns := ev.Source.Cluster, ev.Actor.Namespace; c != "" || ns != "" {
		h.Reset()
		h.WriteString(c)
		h.WriteString("/")
		h.WriteString(ns)
		k[DimCluster] = withDim(DimCluster, h.Sum64())
	}
	if ev.Target.Peer != "" {
		h.Reset()
		h.WriteString(ev.Target.Peer)
		h.WriteString(" ")
		h.WriteString(ev.Action)
		k[DimEdge] = withDim(DimEdge, h.Sum64())
	}
	return k
}

// knownEntry is one known value in 16 bytes instead of a map entry with a
// string key. Times are Unix seconds; use counts live in the stored
// baseline, not in the cache.
type knownEntry struct {
	key         uint64
	first, last uint32
}

// Profile is one identity's baseline as the processor caches it: compact
// known sets, a week of hourly counts and the current hour, updated online by
// Observe and reset to the builder's statistics by Apply. It is owned by a
// Cache and only used under the Cache's lock.
type Profile struct {
	Identity  schemas.Identity
	FirstSeen time.Time
	LastSeen  time.Time
	Events    uint64

	class  *Class
	cohort string
	// model is the latest built baseline's statistics, nil before the first
	// rebuild.
	model *Model
	// relearnUntil is the Unix second until which a deploy of the
	// identity's workload makes new values expected.
	relearnUntil int64

	known []knownEntry // sorted by key
	sizes [NumDims]uint16
	open  uint16 // bit d set: dimension d exceeded MaxKnown

	// hours is a ring of completed hourly counts (half floats) indexed by
	// absolute hour modulo HistoryHours; it holds the hours in
	// (ringHour−HistoryHours, ringHour]. The current hour lives in window
	// until a later event rolls it into the ring.
	hours    [HistoryHours]uint16
	ringHour int64
	window   Window

	// dirty is set by Observe and cleared by Apply: the profile holds
	// learning the stored baseline does not have yet.
	dirty bool
	// prev and next link the Cache's recency list.
	prev, next *Profile
	// accounted is the size the Cache last charged for this profile.
	accounted int
}

// Window is the activity of one identity in one hour.
type Window struct {
	Hour     int64 // absolute hour (Unix seconds / 3600)
	Count    uint32
	Denied   uint32
	Failures uint32
	BytesOut uint64
	// NewActions and NewPeers count the first uses of actions and upstream
	// peers in the hour: probing and fan-out.
	NewActions, NewPeers uint16
}

// Size is an estimate of the memory the profile holds, in bytes: the struct,
// its strings and its known set.
func (p *Profile) Size() int {
	n := int(unsafe.Sizeof(*p)) + len(p.Identity.ID) + len(p.Identity.Name) + len(p.Identity.Kind) +
		len(p.cohort) + cap(p.known)*int(unsafe.Sizeof(knownEntry{}))
	if m := p.model; m != nil {
		n += int(unsafe.Sizeof(*m)) + len(m.TrustDomain)
		if m.Cadence != nil {
			n += int(unsafe.Sizeof(*m.Cadence))
		}
		if m.Issuance != nil {
			n += int(unsafe.Sizeof(*m.Issuance))
		}
	}
	return n
}

// Model is what the latest rebuild computed for the identity, or nil.
func (p *Profile) Model() *Model { return p.model }

// Class is the identity class whose learning and dormancy windows apply.
func (p *Profile) Class() *Class { return p.class }

// Cohort is the workload the identity belongs to ("" for none).
func (p *Profile) Cohort() string { return p.cohort }

// Learning reports whether the identity is still in its learning period at
// event time t: it has too little history, by its class's measure, for
// deviations to mean anything.
func (p *Profile) Learning(t time.Time) bool {
	l := defaultClass.Learning
	if p.class != nil {
		l = p.class.Learning
	}
	return p.Events < l.MinEvents || t.Sub(p.FirstSeen) < l.MinAge
}

// Relearning reports whether a deploy of the identity's workload makes new
// values expected at t.
func (p *Profile) Relearning(t time.Time) bool { return t.Unix() < p.relearnUntil }

func (p *Profile) find(key uint64) (int, bool) {
	i := sort.Search(len(p.known), func(i int) bool { return p.known[i].key >= key })
	return i, i < len(p.known) && p.known[i].key == key
}

// Knows reports whether v has been seen in dimension d. Every value of an
// open dimension counts as known.
func (p *Profile) Knows(d Dim, v string) bool {
	if p.open&(1<<d) != 0 {
		return true
	}
	_, ok := p.find(knownKey(d, v))
	return ok
}

// KnownCount is the size of dimension d's known set.
func (p *Profile) KnownCount(d Dim) int { return int(p.sizes[d]) }

// LastGrew is when dimension d's known set last gained a value.
func (p *Profile) LastGrew(d Dim) time.Time {
	var last uint32
	for _, e := range p.dimEntries(d) {
		last = max(last, e.first)
	}
	if last == 0 {
		return time.Time{}
	}
	return time.Unix(int64(last), 0).UTC()
}

// dimEntries is the part of the known set holding dimension d.
func (p *Profile) dimEntries(d Dim) []knownEntry {
	lo, _ := p.find(uint64(d) << 60)
	hi := len(p.known)
	if d+1 < NumDims {
		hi, _ = p.find(uint64(d+1) << 60)
	}
	return p.known[lo:hi]
}

// learn records a use of the value with key in dimension d between Unix
// seconds first and last, and reports whether the value was new.
func (p *Profile) learn(d Dim, key uint64, first, last int64) bool {
	i, ok := p.find(key)
	f, l := uint32(max(first, 0)), uint32(max(last, 0))
	if ok {
		e := &p.known[i]
		e.first, e.last = min(e.first, f), max(e.last, l)
		return false
	}
	if p.open&(1<<d) != 0 {
		return false
	}
	if p.sizes[d] >= MaxKnown {
		p.setOpen(d)
		return false
	}
	if len(p.known) == cap(p.known) {
		// Grow by a quarter, not double: most sets stop growing early, and
		// spare capacity is memory every cached identity pays for.
		grown := make([]knownEntry, len(p.known), len(p.known)+len(p.known)/4+4)
		copy(grown, p.known)
		p.known = grown
	}
	p.known = p.known[:len(p.known)+1]
	copy(p.known[i+1:], p.known[i:])
	p.known[i] = knownEntry{key: key, first: f, last: l}
	p.sizes[d]++
	return true
}

// setOpen marks d open and drops its values, which no longer matter.
func (p *Profile) setOpen(d Dim) {
	p.open |= 1 << d
	lo, _ := p.find(uint64(d) << 60)
	n := len(p.dimEntries(d))
	p.known = append(p.known[:lo], p.known[lo+n:]...)
	p.sizes[d] = MaxKnown
}

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
		c := p.hourCount(h)
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
	var m float64
	for d := int64(1); d*24 < HistoryHours; d++ {
		m = max(m, p.hourCount(hour-24*d))
	}
	return uint32(m)
}

func (p *Profile) hourCount(h int64) float64 {
	switch {
	case h == p.window.Hour:
		return float64(p.window.Count)
	case h <= p.ringHour && h > max(p.ringHour, p.window.Hour)-HistoryHours:
		return float64(fromHalf(p.hours[h%HistoryHours]))
	}
	return 0
}

// roll makes hour h the current window, moving the window's hour into the
// ring and clearing the ring slots of the silent hours in between.
func (p *Profile) roll(h int64) {
	if p.window.Hour > 0 {
		p.setRing(p.window.Hour, float64(p.window.Count))
	}
	p.window = Window{Hour: h}
}

// setRing stores count for completed hour h, advancing the ring when h is
// newer than what it holds.
func (p *Profile) setRing(h int64, count float64) {
	if h <= p.ringHour-HistoryHours {
		return // older than the week the ring holds
	}
	if h > p.ringHour {
		from := max(p.ringHour+1, h-HistoryHours+1)
		for x := from; x < h; x++ {
			p.hours[x%HistoryHours] = 0
		}
		p.ringHour = h
	}
	p.hours[h%HistoryHours] = toHalf(float32(count))
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
	p.dirty = true
	if p.cohort == "" {
		p.cohort = CohortOf(ev.Identity, ev.Actor.Namespace, ev.Actor.Workload)
	}
	switch h := t.Unix() / 3600; {
	case h > p.window.Hour:
		p.roll(h)
		fallthrough
	case h == p.window.Hour:
		p.window.Count++
		switch ev.Outcome.Result {
		case schemas.ResultDenied:
			p.window.Denied++
		case schemas.ResultFailure:
			p.window.Failures++
		}
		p.window.BytesOut += ev.BytesOut
	default: // a late event of an hour already rolled into the ring
		p.setRing(h, p.hourCount(h)+1)
	}
	sec := t.Unix()
	current := sec/3600 == p.window.Hour
	for d, k := range eventKeys(ev) {
		if k != 0 && p.learn(Dim(d), k, sec, sec) && current {
			switch Dim(d) {
			case DimAction:
				p.window.NewActions++
			case DimPeer:
				p.window.NewPeers++
			}
		}
	}
}

// Apply merges a built baseline into the profile. The baseline holds every
// stored event up to its DataThrough; the profile may already hold some of
// them and newer ones, so counts merge by maximum and sets by union, which
// makes applying the same baseline twice harmless.
func (p *Profile) Apply(b *Baseline, classes Classes) {
	if p.Identity.ID == "" {
		p.Identity = b.Identity
	}
	if p.Events == 0 || (!b.FirstSeen.IsZero() && b.FirstSeen.Before(p.FirstSeen)) {
		p.FirstSeen = b.FirstSeen
	}
	if b.LastSeen.After(p.LastSeen) {
		p.LastSeen = b.LastSeen
	}
	p.Events = max(p.Events, b.Events)
	if b.Cohort != "" {
		p.cohort = b.Cohort
	}
	if b.Class != "" {
		p.class = classes.Named(b.Class)
	}
	if !b.DataThrough.IsZero() && (p.model == nil || !b.DataThrough.Before(p.model.DataThrough)) {
		p.model = newModel(b)
	}
	for _, ks := range b.Known {
		d, ok := ParseDim(ks.Dim)
		if !ok {
			continue
		}
		if ks.Stability.Size > len(ks.Values) || ks.Stability.Size > MaxKnown {
			// The builder kept only the most used values; the rest would
			// read as new.
			p.setOpen(d)
			continue
		}
		for _, kv := range ks.Values {
			p.learn(d, knownKey(d, kv.Value), kv.FirstSeen.Unix(), max(kv.FirstSeen.Unix(), kv.LastSeen.Unix()))
		}
	}
	if spare := cap(p.known) - len(p.known); spare > len(p.known)/8 {
		// A rebuilt set rarely grows again soon; spare capacity is memory
		// every cached identity would pay.
		p.known = slices.Clone(p.known)
	}
	for _, r := range b.Recent {
		switch {
		case r.Hour > p.window.Hour:
			p.roll(r.Hour)
			fallthrough
		case r.Hour == p.window.Hour:
			w := &p.window
			w.Count = max(w.Count, uint32(min(r.Events, math.MaxUint32)))
			w.Denied = max(w.Denied, uint32(min(r.Denied, math.MaxUint32)))
			w.Failures = max(w.Failures, uint32(min(r.Failures, math.MaxUint32)))
			w.BytesOut = max(w.BytesOut, r.BytesOut)
		default:
			p.setRing(r.Hour, max(p.hourCount(r.Hour), float64(r.Events)))
		}
	}
	p.dirty = false
}

// Value returns ev's value in dimension d ("" for none) without building the
// other dimensions' values.
func Value(ev *schemas.Event, d Dim) string {
	switch d {
	case DimAction:
		return ev.Action
	case DimResource:
		return ev.Target.Resource
	case DimPeer:
		return ev.Target.Peer
	case DimNetwork:
		return Network(ev.Actor.IP)
	case DimUserAgent:
		return ev.Actor.UserAgent
	case DimRegion:
		return ev.Source.Region
	case DimCluster:
		return ClusterValue(ev.Source.Cluster, ev.Actor.Namespace)
	case DimIssuer:
		if ev.Issuance != nil {
			return ev.Issuance.Issuer
		}
	case DimCredential:
		return ev.Credential.ID
	case DimEdge:
		if ev.Target.Peer != "" {
			return ev.Target.Peer + " " + ev.Action
		}
	}
	return ""
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
	if pfx, ok := networkOf(ip); ok {
		return pfx.String()
	}
	return ""
}

func networkOf(ip string) (netip.Prefix, bool) {
	if ip == "" {
		return netip.Prefix{}, false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, false
	}
	bits := 64
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	pfx, err := a.Prefix(bits)
	return pfx, err == nil
}
