package baseline

import (
	"context"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// History is one identity's rolled-up activity, the builder's input. A store
// fills it from its rollups; the builder never sees raw events, so the same
// code builds baselines on ClickHouse and on the embedded store.
type History struct {
	Identity schemas.Identity
	// Namespace and Workload are the most frequent actor namespace and
	// workload of the identity's events (empty when none), for its cohort.
	Namespace, Workload string
	// Hours holds one row per active hour, in ascending order.
	Hours []HourRollup
	// Values holds one row per (dimension, value) over the whole history.
	// DimNetwork values are networks (Network of the address), not addresses.
	Values []ValueRollup
	// Issuances are the credentials issued to the identity (subject or
	// requester), in time order.
	Issuances []IssuanceRollup
	// Callers are the identities whose events name this one as their peer.
	Callers []string
}

// HourRollup is one identity's activity in one hour.
type HourRollup struct {
	Hour       int64     `json:"hour"` // Unix seconds / 3600
	Events     uint64    `json:"events"`
	Denied     uint64    `json:"denied"`
	Failures   uint64    `json:"failures"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	DurationMS float64   `json:"duration_ms"`
	First      time.Time `json:"first"` // first event in the hour
	Last       time.Time `json:"last"`  // last event in the hour
	// Histograms of per-event values by log2 bucket (Bucket).
	BytesInHist  Hist `json:"-"`
	BytesOutHist Hist `json:"-"`
	DurationHist Hist `json:"-"`
}

// Hist counts observations by log2 bucket: bucket b holds x with
// floor(log2(x+1)) = b. It is sparse because most identities use few sizes.
type Hist map[uint8]uint64

// Bucket is the log2 bucket of x (negative values count as zero).
func Bucket(x float64) uint8 {
	if x < 1 {
		return 0
	}
	b := uint8(0)
	for v := uint64(x + 1); v > 1; v >>= 1 {
		b++
	}
	return b
}

// BucketEdge is the upper bound of bucket b, 2^(b+1) − 1: every value in the
// bucket is below it (whole numbers up to one less).
func BucketEdge(b uint8) float64 {
	if b >= 63 {
		return float64(^uint64(0))
	}
	return float64(uint64(1)<<(b+1) - 1)
}

// ValueRollup is one value of one dimension with when the identity first
// and last used it and how often.
type ValueRollup struct {
	Dim       Dim
	Value     string
	FirstSeen time.Time
	LastSeen  time.Time
	Count     uint64
}

// IssuanceRollup is one credential issued to the identity.
type IssuanceRollup struct {
	Credential string
	Issuer     string
	IssuedAt   time.Time
	TTL        time.Duration // zero when unknown
}

// Store is where the builder reads rolled-up history and keeps baselines:
// ClickHouse (chstore) in production, the embedded memstore on a laptop.
type Store interface {
	// Rollup brings the rollups up to date with the events stored since
	// mark (the zero time means all) and returns the identities whose
	// rollups changed and the mark to pass next time. Rolling the same
	// events up twice must give the same rollups.
	Rollup(ctx context.Context, mark time.Time) (changed []string, next time.Time, err error)
	// Histories calls fn with the history of each identity in ids (every
	// identity with rollups when ids is nil), counting only activity at or
	// after from. fn must not retain the History.
	Histories(ctx context.Context, ids []string, from time.Time, fn func(*History) error) error
	// SaveBaselines stores one new version of each baseline.
	SaveBaselines(ctx context.Context, bs []*Baseline) error
	// LoadBaselines calls fn with the newest stored baseline of each
	// identity in ids (every identity when ids is nil).
	LoadBaselines(ctx context.Context, ids []string, fn func(*Baseline) error) error
	// Mark and SetMark keep the rollup mark across restarts.
	Mark(ctx context.Context) (time.Time, error)
	SetMark(ctx context.Context, mark time.Time) error
}

// Counts tallies string values; stores use it for a History's Namespace and
// Workload.
type Counts map[string]uint64

// Add counts n more uses of v, making the map when it is nil.
func (c *Counts) Add(v string, n uint64) {
	if *c == nil {
		*c = Counts{}
	}
	(*c)[v] += n
}

// MostFrequent is the value with the largest count, the smallest on a tie
// so every store picks the same one, "" for none.
func (c Counts) MostFrequent() string {
	best, bestN := "", uint64(0)
	for v, n := range c {
		if n > bestN || (n == bestN && v < best) {
			best, bestN = v, n
		}
	}
	return best
}
