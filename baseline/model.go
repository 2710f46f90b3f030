package baseline

import (
	"math"
	"slices"
	"time"
)

// Model is the part of a built Baseline that detectors read from the cache:
// the statistics only the builder can compute from long history (seasonal
// rate, quantiles, cadence, issuance, graph), compacted. A Profile has none
// until the identity's first rebuild; detectors that need one stay quiet
// until then.
type Model struct {
	// DataThrough is the time the model describes (Baseline.DataThrough).
	DataThrough time.Time
	// centre is the seasonal centre of the hourly rate (Baseline.Rate) per
	// hour of week on a log scale (logCount), and spread its spread per
	// hour of day (the median over the week's days) as half floats: the
	// spread of one hour of week rests on four samples a month, too few to
	// keep apart, and memory is what a million cached identities pay.
	// Pooled as in Rate.
	centre    [HoursPerWeek]uint8
	spread    [24]uint16
	Pooled    bool
	RateHours int
	RateMean  float32
	// ActiveShare is, per UTC hour of day, the share of observed days the
	// identity was active in that hour, in 1/255ths.
	ActiveShare [24]uint8
	// features is Baseline.Features compacted (zero when it has none),
	// held by value so Profile.Size counts it; here its 60 bytes fill the
	// padding after ActiveShare, making Model 448 bytes, a size class.
	features    FeatureStats
	ActiveHours int
	// Seconds.
	MedianGap, LongestGap float32

	DeniedRatio, FailureRatio float32
	// BytesOut is what exfiltration is judged against; the other quantiles
	// stay in the stored baseline.
	BytesOut QuantileModel

	Cadence  *Cadence
	Issuance *IssuanceProfile

	TrustDomain string
	FanIn       int
	FanOut      int // distinct peer/route edges
	Peers       int // distinct peers called
}

// QuantileModel is Quantiles compacted.
type QuantileModel struct {
	Count         uint64
	P50, P90, P99 float32
	Max           float32
}

// Features is the identity's feature model (Baseline.Features), nil when
// the baseline had none.
func (m *Model) Features() *FeatureStats {
	if m.features.prec[0] == 0 {
		return nil
	}
	return &m.features
}

// Centre is the seasonal centre of the hourly rate at hour of week how.
func (m *Model) Centre(how int) float64 { return fromLogCount(m.centre[how]) }

// logCount encodes a count in one byte as round(16·log2(1+x)): steps of
// 4.4%, far finer than the ratios a volume detector compares, up to about
// 61,000 an hour (larger counts saturate there).
func logCount(x float64) uint8 {
	return uint8(min(255, math.Round(16*math.Log2(1+max(x, 0)))))
}

func fromLogCount(b uint8) float64 { return math.Exp2(float64(b)/16) - 1 }

// Spread is the seasonal spread of the hourly rate at hour of week how (its
// hour of day's).
func (m *Model) Spread(how int) float64 { return float64(fromHalf(m.spread[how%24])) }

// HourOfWeek is the Monday-based UTC hour of week of t, the index of Centre
// and Spread.
func HourOfWeek(t time.Time) int {
	t = t.UTC()
	return (int(t.Weekday())+6)%7*24 + t.Hour()
}

// Active reports the share of days the identity was active in t's UTC hour
// of day.
func (m *Model) Active(t time.Time) float64 { return float64(m.ActiveShare[t.UTC().Hour()]) / 255 }

func quantileModel(q Quantiles) QuantileModel {
	return QuantileModel{Count: q.Count, P50: float32(q.P50), P90: float32(q.P90), P99: float32(q.P99), Max: float32(q.Max)}
}

// newModel compacts b.
func newModel(b *Baseline) *Model {
	m := &Model{
		DataThrough: b.DataThrough, Pooled: b.Rate.Pooled, RateHours: b.Rate.Hours, RateMean: float32(b.Rate.Mean),
		ActiveHours: b.Activity.ActiveHours, MedianGap: float32(b.Activity.MedianGap), LongestGap: float32(b.Activity.LongestGap),
		DeniedRatio: float32(b.Outcome.DeniedRatio), FailureRatio: float32(b.Outcome.FailureRatio),
		BytesOut: quantileModel(b.BytesOut),
		Cadence:  b.Cadence, Issuance: b.Issuance,
	}
	if b.Features != nil {
		m.features = b.Features.stats()
	}
	for h := range HoursPerWeek {
		m.centre[h] = logCount(b.Rate.Centre[h])
	}
	var days [7]float64
	for h := range 24 {
		for d := range days {
			days[d] = b.Rate.Spread[d*24+h]
		}
		slices.Sort(days[:])
		m.spread[h] = toHalf(float32(days[3]))
	}
	for h, share := range b.Activity.HourOfDay {
		m.ActiveShare[h] = uint8(min(max(share, 0), 1)*255 + 0.5)
	}
	if g := b.Graph; g != nil {
		m.TrustDomain, m.FanIn, m.FanOut = g.TrustDomain, g.FanIn, len(g.FanOut)
		peers := map[string]struct{}{}
		for _, e := range g.FanOut {
			peers[e.Peer] = struct{}{}
		}
		m.Peers = len(peers)
	}
	return m
}

// CohortModel is a cohort baseline as the cache keeps it, shared by the
// cohort's members.
type CohortModel struct {
	Key     string
	Members int
	// Rate and Spread are the median and scaled MAD of the members' mean
	// hourly counts.
	Rate, Spread float64
	// actions maps an action's known-set key to how many members use it.
	actions map[uint64]int
}

func newCohortModel(c *CohortBaseline) *CohortModel {
	m := &CohortModel{Key: c.Cohort, Members: max(c.Size, len(c.Members)), Rate: c.Rate, Spread: c.Spread, actions: make(map[uint64]int, len(c.Actions))}
	for a, n := range c.Actions {
		m.actions[knownKey(DimAction, a)] = n
	}
	return m
}

// ActionUsers is how many members of the cohort use action.
func (m *CohortModel) ActionUsers(action string) int { return m.actions[knownKey(DimAction, action)] }
