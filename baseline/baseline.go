package baseline

import (
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Baseline is one identity's statistics as the builder computes them from
// its rolled-up history (SPEC §4). It is stored as one versioned row per
// identity, loaded into the Cache's compact Profile, and printed by
// `nhisentry baseline show`. Durations are in seconds so the JSON form is
// readable without units.
type Baseline struct {
	Identity schemas.Identity `json:"identity"`
	// Class picks the learning and dormancy windows (ClassConfig).
	Class string `json:"class"`
	// Cohort is the workload the identity belongs to (replicas, one service
	// account); empty when it belongs to none.
	Cohort string `json:"cohort,omitempty"`
	// Version orders the stored rows of one identity: the newest wins.
	Version int64 `json:"version"`
	// BuiltAt is when the builder ran; DataThrough is the time the baseline
	// describes: the wall clock in live operation, the latest event when
	// old logs are scanned. Dormancy and the recent windows end there.
	BuiltAt     time.Time `json:"built_at"`
	DataThrough time.Time `json:"data_through"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Events    uint64    `json:"events"`

	Rate     Rate             `json:"rate"`
	Known    []KnownSet       `json:"known"`
	Outcome  OutcomeProfile   `json:"outcome"`
	BytesIn  Quantiles        `json:"bytes_in"`
	BytesOut Quantiles        `json:"bytes_out"`
	Duration Quantiles        `json:"duration_ms"`
	Activity Activity         `json:"activity"`
	Issuance *IssuanceProfile `json:"issuance,omitempty"`
	Cadence  *Cadence         `json:"cadence,omitempty"`
	Graph    *Graph           `json:"graph,omitempty"`
	// CohortStats summarises the identity's cohort when it has one.
	CohortStats *CohortBaseline `json:"cohort_stats,omitempty"`
	// Features is where the identity's active hours lie in feature space,
	// for the multivariate outlier detector; nil with fewer than
	// BuildOptions.FeatureMinHours active hours.
	Features *FeatureModel `json:"features,omitempty"`
	// Recent is the hourly activity of the week before DataThrough, which the
	// cache's online counters continue from: the active hours among the 168
	// ending with the hour that holds the last instant before DataThrough
	// (so a partial last hour is included), without histograms.
	Recent []HourRollup `json:"recent,omitempty"`
}

// HoursPerWeek is the period of the rate profile.
const HoursPerWeek = 168

// Rate is the hourly event count by hour of week (0 is Monday 00:00 UTC):
// a robust centre (median) and spread (MAD scaled by 1.4826 to estimate a
// standard deviation) over every hour of the span from the first to the
// last active hour, counting silent hours as zero. The median of an even
// number of samples is the mean of the middle two.
//
// The samples of hour of week w are the span's hours that fall on w. When
// there are fewer than three, w's Centre and Spread are those of its hour
// of day instead: the samples of every hour of the span with that hour of
// day, or, when the span (shorter than a day) has none, of every hour of the
// span. So a baseline is usable after a day of history rather than after
// three weeks.
type Rate struct {
	Centre [HoursPerWeek]float64 `json:"centre"`
	Spread [HoursPerWeek]float64 `json:"spread"`
	// Hours is how many hours the profile covers (first to last hour
	// observed, silent ones included).
	Hours int `json:"hours"`
	// Pooled is set when at least one hour of week took its hour of day's
	// (or the span's) statistics: exactly when the span is shorter than
	// three weeks (504 hours).
	Pooled bool `json:"pooled"`
	// Mean is the mean hourly count over the span.
	Mean float64 `json:"mean"`
}

// KnownSet is every value the identity used in one dimension (Dim is the
// Dim's String), most used first (ties by value), capped at the builder's
// MaxValues; Stability describes the whole, uncapped set.
type KnownSet struct {
	Dim       string       `json:"dim"`
	Values    []KnownValue `json:"values"`
	Stability Stability    `json:"stability"`
}

// KnownValue is one value of a dimension with when it was first and last
// used and how often.
type KnownValue struct {
	Value     string    `json:"value"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Count     uint64    `json:"count"`
}

// Stability measures how often a known set grows. A set that has not grown
// in weeks makes a new value significant; one that grows daily does not.
type Stability struct {
	// Size is the number of values in the set, uncapped.
	Size int `json:"size"`
	// NewLast7d and NewLast28d count values first seen at or after
	// DataThrough − 7 days and DataThrough − 28 days.
	NewLast7d  int `json:"new_last_7d"`
	NewLast28d int `json:"new_last_28d"`
	// LastGrew is the latest FirstSeen of the set's values.
	LastGrew time.Time `json:"last_grew"`
	// Score is 1 − G/(D − 1), where D is the number of UTC days from the
	// identity's first active day to its last, both included, and G the
	// number of distinct UTC days after the first on which at least one
	// value was first seen: 1 for a set that never grew after the
	// identity's first day, 0 for one that grew on every later day. It is 1
	// when D ≤ 1 and never below 0.
	Score float64 `json:"score"`
}

// OutcomeProfile counts results and their ratios. Success is, summed over
// the active hours, events − denied − failures (0 for an hour whose denied
// and failures exceed its events); the ratios are Failure and Denied over
// all events (0 without events).
type OutcomeProfile struct {
	Success      uint64  `json:"success"`
	Failure      uint64  `json:"failure"`
	Denied       uint64  `json:"denied"`
	FailureRatio float64 `json:"failure_ratio"`
	DeniedRatio  float64 `json:"denied_ratio"`
}

// Quantiles of a per-event size or latency, estimated from a log2 histogram:
// each is the upper edge (2^(b+1) − 1) of the bucket b = floor(log2(x+1))
// holding the observation of rank ceil(q·n), where n (Count) is the number
// of observations in the histograms merged over every hour; Max is the upper
// edge of the highest non-empty bucket. All are 0 when n is 0. The estimate
// is within a factor of two, which is what a size anomaly needs, and
// histograms merge exactly across hours.
type Quantiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Activity is when the identity is active and how long it stays silent.
type Activity struct {
	// ActiveHours is the number of hours with at least one event.
	ActiveHours int `json:"active_hours"`
	// HourOfDay is, per hour of day (UTC), the fraction of observed days on
	// which the identity was active in that hour; the observed days are the
	// UTC days from the first active day to the last, both included.
	HourOfDay [24]float64 `json:"hour_of_day"`
	// LongestGap and MedianGap are the longest and the median silence
	// between active hours, in seconds: for each two consecutive active
	// hours that are not adjacent, the start of the later minus the end of
	// the earlier (a whole number of hours). 0 when there is no such gap.
	// Dormant is the silence from LastSeen to DataThrough (never negative; 0
	// for an identity never seen).
	LongestGap float64 `json:"longest_gap_s"`
	MedianGap  float64 `json:"median_gap_s"`
	Dormant    float64 `json:"dormant_s"`
}

// IssuanceProfile describes the credentials issued to the identity.
type IssuanceProfile struct {
	// Issued is the number of issuances, renewals included.
	Issued int `json:"issued"`
	// TTL and Interval are medians in seconds: the credential lifetime over
	// the issuances with a known TTL (0 when none is known), and the time
	// between consecutive issuances in time order (0 for one issuance).
	TTL      float64 `json:"ttl_s"`
	Interval float64 `json:"interval_s"`
	// MaxConcurrent is the largest number of credentials valid at once;
	// Concurrent is the number valid at DataThrough. An issuance is valid
	// over [IssuedAt, IssuedAt+TTL), or only at the instant IssuedAt when
	// its TTL is unknown. A credential issued again (the same non-empty
	// Credential: a renewal) is one credential: its earlier validity ends
	// at the later IssuedAt.
	MaxConcurrent int `json:"max_concurrent"`
	Concurrent    int `json:"concurrent"`
}

// Cadence is the schedule of a job-like identity (cron, CI, batch): runs are
// maximal streaks of consecutive active hours, a run starts at the first
// event of its first hour, and the starts recur at Interval with Jitter
// (median and MAD × 1.4826 of the gaps between consecutive run starts,
// seconds). An identity is job-like when it has at least 4 runs, Interval is
// at least 2 hours and Jitter at most a tenth of Interval: a schedule
// shorter than 2 hours cannot be told apart from a busy service in hourly
// rollups. LastRun is the last run's start, NextExpected LastRun+Interval.
type Cadence struct {
	Runs         int       `json:"runs"`
	Interval     float64   `json:"interval_s"`
	Jitter       float64   `json:"jitter_s"`
	LastRun      time.Time `json:"last_run"`
	NextExpected time.Time `json:"next_expected"`
}

// Graph is the identity's place in the mesh call graph.
type Graph struct {
	// TrustDomain is the trust domain of a SPIFFE identity id.
	TrustDomain string `json:"trust_domain,omitempty"`
	// FanOut lists the peer/route edges the identity calls (its DimEdge
	// values), most used first, capped at the builder's MaxEdges.
	FanOut []Edge `json:"fan_out"`
	// Callers are the distinct identities that call this one, sorted and
	// capped at the builder's MaxCallers; FanIn is how many there are,
	// uncapped.
	FanIn   int      `json:"fan_in"`
	Callers []string `json:"callers,omitempty"`
}

// Edge is one call edge: the upstream peer and the route or method (a
// DimEdge value split at its first space; Route is empty without one).
type Edge struct {
	Peer      string    `json:"peer"`
	Route     string    `json:"route"`
	Count     uint64    `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// CohortBaseline summarises the identities of one workload so one member
// that behaves unlike its peers stands out.
type CohortBaseline struct {
	Cohort string `json:"cohort"`
	// Members are the members' identity ids, sorted, capped (see Cohorts);
	// Size is the number of members, uncapped, which the other statistics
	// cover.
	Members []string `json:"members"`
	Size    int      `json:"size"`
	// Rate is the median over members of their mean hourly count
	// (Rate.Mean), Spread the MAD × 1.4826.
	Rate   float64 `json:"rate"`
	Spread float64 `json:"spread"`
	// Actions maps each action any member uses (a value of its "action"
	// known set, as kept) to how many members use it.
	Actions map[string]int `json:"actions"`
}
