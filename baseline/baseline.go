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
	// BuiltAt is when the builder ran; DataThrough is the rollup mark: every
	// event stored before it is in this baseline.
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
	// Recent is the hourly activity of the week before DataThrough, which the
	// cache's online counters continue from.
	Recent []HourRollup `json:"recent,omitempty"`
}

// HoursPerWeek is the period of the rate profile.
const HoursPerWeek = 168

// Rate is the hourly event count by hour of week (0 is Monday 00:00 UTC):
// a robust centre (median) and spread (MAD scaled by 1.4826 to estimate a
// standard deviation) over every observed hour, counting silent hours as
// zero. With fewer than three samples of an hour of week the hours of day
// are pooled across the days instead (Pooled), so a baseline is usable after
// a day of history rather than after three weeks.
type Rate struct {
	Centre [HoursPerWeek]float64 `json:"centre"`
	Spread [HoursPerWeek]float64 `json:"spread"`
	// Hours is how many hours the profile covers (first to last hour
	// observed, silent ones included).
	Hours  int     `json:"hours"`
	Pooled bool    `json:"pooled"`
	Mean   float64 `json:"mean"`
}

// KnownSet is every value the identity used in one dimension.
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
	Size int `json:"size"`
	// NewLast7d and NewLast28d count values first seen in the 7 and 28 days
	// before DataThrough.
	NewLast7d  int       `json:"new_last_7d"`
	NewLast28d int       `json:"new_last_28d"`
	LastGrew   time.Time `json:"last_grew"`
	// Score is 1 − (days of the observed span on which the set grew) /
	// (days observed): 1 for a set that never grew after its first day.
	Score float64 `json:"score"`
}

// OutcomeProfile counts results and their ratios.
type OutcomeProfile struct {
	Success      uint64  `json:"success"`
	Failure      uint64  `json:"failure"`
	Denied       uint64  `json:"denied"`
	FailureRatio float64 `json:"failure_ratio"`
	DeniedRatio  float64 `json:"denied_ratio"`
}

// Quantiles of a per-event size or latency, estimated from a log2 histogram:
// each is the upper edge (2^(b+1) − 1) of the bucket b = floor(log2(x+1))
// holding the observation of rank ceil(q·n). The estimate is within a factor
// of two, which is what a size anomaly needs, and histograms merge exactly
// across hours.
type Quantiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Activity is when the identity is active and how long it stays silent.
type Activity struct {
	ActiveHours int `json:"active_hours"`
	// HourOfDay is, per hour of day (UTC), the fraction of observed days on
	// which the identity was active in that hour.
	HourOfDay [24]float64 `json:"hour_of_day"`
	// LongestGap and MedianGap are the silences between active hours, in
	// seconds; Dormant is the silence from LastSeen to DataThrough.
	LongestGap float64 `json:"longest_gap_s"`
	MedianGap  float64 `json:"median_gap_s"`
	Dormant    float64 `json:"dormant_s"`
}

// IssuanceProfile describes the credentials issued to the identity.
type IssuanceProfile struct {
	Issued int `json:"issued"`
	// TTL and Interval are medians in seconds: the credential lifetime and
	// the time between issuances.
	TTL      float64 `json:"ttl_s"`
	Interval float64 `json:"interval_s"`
	// MaxConcurrent is the largest number of credentials valid at once;
	// Concurrent is the number valid at DataThrough.
	MaxConcurrent int `json:"max_concurrent"`
	Concurrent    int `json:"concurrent"`
}

// Cadence is the schedule of a job-like identity (cron, CI, batch): runs are
// maximal streaks of active hours, and their starts recur at Interval with
// Jitter (median and scaled MAD of the gaps between run starts, seconds).
type Cadence struct {
	Runs         int       `json:"runs"`
	Interval     float64   `json:"interval_s"`
	Jitter       float64   `json:"jitter_s"`
	LastRun      time.Time `json:"last_run"`
	NextExpected time.Time `json:"next_expected"`
}

// Graph is the identity's place in the mesh call graph.
type Graph struct {
	TrustDomain string `json:"trust_domain,omitempty"`
	// FanOut lists the peer/route edges the identity calls.
	FanOut []Edge `json:"fan_out"`
	// Callers are the identities that call this one; FanIn is how many.
	FanIn   int      `json:"fan_in"`
	Callers []string `json:"callers,omitempty"`
}

// Edge is one call edge: the upstream peer and the route or method.
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
	Cohort  string   `json:"cohort"`
	Members []string `json:"members"`
	// Rate is the median over members of their mean hourly count, Spread the
	// scaled MAD.
	Rate   float64 `json:"rate"`
	Spread float64 `json:"spread"`
	// Actions maps each action any member uses to how many members use it.
	Actions map[string]int `json:"actions"`
}
