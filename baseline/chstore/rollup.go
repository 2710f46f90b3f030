package chstore

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/schemas"
)

var _ baseline.Store = (*Store)(nil)

// RollupOverlap is how far before the mark Rollup looks again. A batch that
// is written late, after retries, carries the ingest time it was decoded at,
// which can be older than a mark taken in between; recomputing is
// idempotent, so looking again costs time, never correctness.
const RollupOverlap = 15 * time.Minute

// Chunk limits keep every statement under ClickHouse's default
// max_query_size (256 KiB) however long identity ids are, and bound what one
// Histories chunk holds in memory.
var (
	chunkIDs   = 1000
	chunkBytes = 128 << 10
)

// Internal dimensions of identity_values (see 0003_rollups.sql); never part
// of History.Values.
const (
	dimNamespace = "_namespace"
	dimWorkload  = "_workload"
	dimCaller    = "_caller"
)

// dimSQL is, per dimension, the SQL expression over an events row that is
// baseline.Values(ev) for it, except DimNetwork: the raw address, mapped
// with baseline.Network when read.
var dimSQL = [baseline.NumDims]string{
	baseline.DimAction:     "action",
	baseline.DimResource:   "target_resource",
	baseline.DimPeer:       "target_peer",
	baseline.DimNetwork:    "actor_ip",
	baseline.DimUserAgent:  "actor_user_agent",
	baseline.DimRegion:     "region",
	baseline.DimCluster:    "if(cluster != '' OR actor_namespace != '', concat(cluster, '/', actor_namespace), '')",
	baseline.DimIssuer:     "issuer", // empty unless the event issued a credential
	baseline.DimCredential: "credential_id",
	baseline.DimEdge:       "if(target_peer != '', concat(target_peer, ' ', action), '')",
}

// lastVersion makes versions strictly increasing within the process even
// when the clock does not move between two inserts.
var lastVersion atomic.Uint64

// nextVersion is the version of rows about to be inserted: wall-clock
// nanoseconds, so versions also increase across processes and restarts.
func nextVersion() uint64 {
	for {
		last := lastVersion.Load()
		v := max(uint64(time.Now().UnixNano()), last+1)
		if lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
}

// Rollup recomputes the hourly and daily rollups touched by the events
// stored since mark − RollupOverlap (everything for the zero mark) and
// returns the identities touched and the next mark: the newest ingest time
// seen, or mark when nothing is newer. A touched hour or day is recomputed
// whole from events FINAL and inserted as a newer version, so a replayed or
// re-read event is never counted twice.
//
// changed is every identity with an event in that window, which includes
// identities whose rollups came out unchanged (a Kafka replay stamps a new
// ingest time; the overlap re-reads the last minutes): a needless rebuild is
// cheap, a missed one after a failed run is not.
func (s *Store) Rollup(ctx context.Context, mark time.Time) ([]string, time.Time, error) {
	since := time.Unix(0, 0)
	if !mark.IsZero() {
		since = mark.Add(-RollupOverlap)
	}
	type touchedDay struct {
		day    int64 // Unix days
		maxIng uint32
	}
	var days []touchedDay
	err := s.query(ctx, "rollup days", rollupDaysSQL(s.db, since), func(scan func(...any) error) error {
		var d, ing uint32
		if err := scan(&d, &ing); err != nil {
			return err
		}
		days = append(days, touchedDay{int64(d), ing})
		return nil
	})
	if err != nil {
		return nil, mark, fmt.Errorf("rollup since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	next := mark
	changed := map[string]bool{}
	for _, d := range days {
		if t := time.Unix(int64(d.maxIng), 0).UTC(); t.After(next) {
			next = t
		}
		if err := s.rollupDay(ctx, since, d.day, changed); err != nil {
			return nil, mark, err
		}
	}
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, next, nil
}

// touchedIdentity is an identity with new events on one day and the first
// and last hour (Unix hours) they fall in.
type touchedIdentity struct {
	id          string
	first, last int64
}

// rollupDay recomputes the day's rollups of every identity with events
// ingested since since, a chunk of identities per statement.
func (s *Store) rollupDay(ctx context.Context, since time.Time, day int64, changed map[string]bool) error {
	dayStart := time.Unix(day*86400, 0).UTC()
	var touched []touchedIdentity
	err := s.query(ctx, "rollup identities", rollupTouchedSQL(s.db, since, dayStart), func(scan func(...any) error) error {
		var t touchedIdentity
		var first, last uint32
		if err := scan(&t.id, &first, &last); err != nil {
			return err
		}
		t.first, t.last = int64(first), int64(last)
		touched = append(touched, t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollup day %s: %w", dayStart.Format(time.DateOnly), err)
	}
	ids := make([]string, len(touched))
	for i, t := range touched {
		ids[i] = t.id
		changed[t.id] = true
	}
	for lo, hi := range chunks(ids) {
		first, last := touched[lo].first, touched[lo].last
		for _, t := range touched[lo:hi] {
			first, last = min(first, t.first), max(last, t.last)
		}
		from, to := time.Unix(first*3600, 0).UTC(), time.Unix((last+1)*3600, 0).UTC()
		version := nextVersion()
		if err := s.conn.Exec(ctx, rollupHoursSQL(s.db, ids[lo:hi], from, to, version)); err != nil {
			return fmt.Errorf("rollup hours %s–%s of %d identities: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), hi-lo, err)
		}
		if err := s.conn.Exec(ctx, rollupValuesSQL(s.db, ids[lo:hi], dayStart, dayStart.AddDate(0, 0, 1), version)); err != nil {
			return fmt.Errorf("rollup values %s of %d identities: %w", dayStart.Format(time.DateOnly), hi-lo, err)
		}
	}
	return nil
}

// chunks yields [lo, hi) ranges of ids within the chunk limits.
func chunks(ids []string) func(yield func(int, int) bool) {
	return func(yield func(int, int) bool) {
		lo, size := 0, 0
		for i, id := range ids {
			if i > lo && (i-lo >= chunkIDs || size+len(id) > chunkBytes) {
				if !yield(lo, i) {
					return
				}
				lo, size = i, 0
			}
			size += len(id) + 4 // quotes, comma, space
		}
		if lo < len(ids) {
			yield(lo, len(ids))
		}
	}
}

// Histories calls fn with the history of each identity in ids, in the order
// given without repeats (every identity with rollups, in id order, when ids
// is nil). Identities with nothing at or after from are skipped. It reads a
// chunk of identities at a time, so only one chunk of histories is held.
//
// from counts at the granularity each part is stored at, as on memstore: an
// hour when its hour is at or after from's hour, a value (known values,
// namespace and workload counts, callers) when its UTC day is at or after
// from's day, an issuance when it is at or after from itself.
func (s *Store) Histories(ctx context.Context, ids []string, from time.Time, fn func(*baseline.History) error) error {
	if ids == nil {
		err := s.query(ctx, "history identities", historyIdentitiesSQL(s.db, from), func(scan func(...any) error) error {
			var id string
			if err := scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		ids = uniq(ids)
	}
	for lo, hi := range chunks(ids) {
		if err := s.historyChunk(ctx, ids[lo:hi], from, fn); err != nil {
			return err
		}
	}
	return nil
}

func uniq(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// historyAcc collects one identity's history from the chunk's queries.
type historyAcc struct {
	h          baseline.History
	values     map[valueKey]*baseline.ValueRollup
	namespaces baseline.Counts
	workloads  baseline.Counts
}

type valueKey struct {
	dim   baseline.Dim
	value string
}

func (s *Store) historyChunk(ctx context.Context, ids []string, from time.Time, fn func(*baseline.History) error) error {
	accs := make(map[string]*historyAcc, len(ids))
	for _, id := range ids {
		accs[id] = &historyAcc{h: baseline.History{Identity: schemas.Identity{ID: id}}}
	}
	err := s.query(ctx, "history kinds", historyKindsSQL(s.db, ids), func(scan func(...any) error) error {
		var id, kind, name string
		if err := scan(&id, &kind, &name); err != nil {
			return err
		}
		if a := accs[id]; a != nil {
			a.h.Identity.Kind, a.h.Identity.Name = schemas.IdentityKind(kind), name
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.query(ctx, "history hours", historyHoursSQL(s.db, ids, from), func(scan func(...any) error) error {
		var id string
		var hour, first, last uint32
		var r baseline.HourRollup
		var inK, outK, durK []uint8
		var inC, outC, durC []uint64
		if err := scan(&id, &hour, &r.Events, &r.Denied, &r.Failures, &r.BytesIn, &r.BytesOut, &r.DurationMS,
			&first, &last, &inK, &inC, &outK, &outC, &durK, &durC); err != nil {
			return err
		}
		a := accs[id]
		if a == nil {
			return nil
		}
		r.Hour = int64(hour) / 3600
		r.First, r.Last = time.Unix(int64(first), 0).UTC(), time.Unix(int64(last), 0).UTC()
		r.BytesInHist, r.BytesOutHist, r.DurationHist = hist(inK, inC), hist(outK, outC), hist(durK, durC)
		a.h.Hours = append(a.h.Hours, r)
		return nil
	})
	if err != nil {
		return err
	}
	err = s.query(ctx, "history values", historyValuesSQL(s.db, ids, from), func(scan func(...any) error) error {
		var id, dim, value string
		var count uint64
		var first, last uint32
		if err := scan(&id, &dim, &value, &count, &first, &last); err != nil {
			return err
		}
		if a := accs[id]; a != nil {
			a.addValue(dim, value, count, time.Unix(int64(first), 0).UTC(), time.Unix(int64(last), 0).UTC())
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.query(ctx, "history issuances", historyIssuancesSQL(s.db, ids, from), func(scan func(...any) error) error {
		var id string
		var is baseline.IssuanceRollup
		var at, ns uint32
		var ttl int64
		if err := scan(&id, &is.Credential, &is.Issuer, &at, &ns, &ttl); err != nil {
			return err
		}
		is.IssuedAt = time.Unix(int64(at), int64(ns)).UTC()
		if ttl > 0 {
			is.TTL = time.Duration(ttl) * time.Second
		}
		// The query has second precision; from itself is exact.
		if a := accs[id]; a != nil && !is.IssuedAt.Before(from) {
			a.h.Issuances = append(a.h.Issuances, is)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		h := accs[id].finish()
		if h == nil {
			continue
		}
		if err := fn(h); err != nil {
			return err
		}
		delete(accs, id) // fn must not retain h; let it go before the next one
	}
	return nil
}

func hist(keys []uint8, counts []uint64) baseline.Hist {
	h := make(baseline.Hist, len(keys))
	for i, k := range keys {
		if i < len(counts) {
			h[k] += counts[i]
		}
	}
	return h
}

// addValue folds one (dimension, value) row, already summed over days.
// Several addresses map to one network, so network rows merge here.
func (a *historyAcc) addValue(dim, value string, count uint64, first, last time.Time) {
	switch dim {
	case dimNamespace:
		a.namespaces.Add(value, count)
		return
	case dimWorkload:
		a.workloads.Add(value, count)
		return
	case dimCaller:
		a.h.Callers = append(a.h.Callers, value)
		return
	}
	d, ok := baseline.ParseDim(dim)
	if !ok {
		return // a dimension this binary does not know yet
	}
	if d == baseline.DimNetwork {
		if value = baseline.Network(value); value == "" {
			return
		}
	}
	if a.values == nil {
		a.values = map[valueKey]*baseline.ValueRollup{}
	}
	k := valueKey{d, value}
	v := a.values[k]
	if v == nil {
		a.values[k] = &baseline.ValueRollup{Dim: d, Value: value, FirstSeen: first, LastSeen: last, Count: count}
		return
	}
	if first.Before(v.FirstSeen) {
		v.FirstSeen = first
	}
	if last.After(v.LastSeen) {
		v.LastSeen = last
	}
	v.Count += count
}

// finish orders the collected parts, or returns nil when the identity has
// nothing in the window.
func (a *historyAcc) finish() *baseline.History {
	h := &a.h
	if len(h.Hours) == 0 && len(a.values) == 0 && len(h.Issuances) == 0 {
		return nil
	}
	slices.SortFunc(h.Hours, func(x, y baseline.HourRollup) int { return cmp.Compare(x.Hour, y.Hour) })
	for _, v := range a.values {
		h.Values = append(h.Values, *v)
	}
	slices.SortFunc(h.Values, func(x, y baseline.ValueRollup) int {
		return cmp.Or(cmp.Compare(x.Dim, y.Dim), strings.Compare(x.Value, y.Value))
	})
	slices.SortFunc(h.Issuances, func(x, y baseline.IssuanceRollup) int {
		return cmp.Or(x.IssuedAt.Compare(y.IssuedAt), strings.Compare(x.Credential, y.Credential),
			strings.Compare(x.Issuer, y.Issuer), cmp.Compare(x.TTL, y.TTL))
	})
	slices.Sort(h.Callers)
	h.Callers = slices.Compact(h.Callers)
	h.Namespace, h.Workload = a.namespaces.MostFrequent(), a.workloads.MostFrequent()
	return h
}

// The SQL below is built as text with quoted literals rather than bound
// parameters, so QueryTexts renders exactly what runs. Times are Unix
// seconds through toDateTime and hours and days are integer arithmetic on
// them, so nothing depends on the server's time zone.

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func inList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = quote(id)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// dateTime is t as a DateTime, clamped to the range the type holds.
func dateTime(t time.Time) string {
	return fmt.Sprintf("toDateTime(%d)", min(max(t.Unix(), 0), math.MaxUint32))
}

// dateOf is the UTC day of t as a Date.
func dateOf(t time.Time) string {
	if t.Unix() < 0 {
		t = time.Unix(0, 0)
	}
	return "toDate('" + t.UTC().Format(time.DateOnly) + "')"
}

// bucketSQL is baseline.Bucket(x) for a numeric column: floor(log2(x+1)),
// corrected down by one where log2 rounds up to the next integer just below
// a power of two (x = 2^50 − 2, say), and capped at 63 as Go's conversion
// caps it.
func bucketSQL(col string) string {
	y := "greatest(toFloat64(" + col + "), 0) + 1"
	return "toUInt8(least(floor(log2(" + y + ")) - (exp2(floor(log2(" + y + "))) > " + y + "), 63))"
}

func rollupDaysSQL(db string, since time.Time) string {
	return `SELECT intDiv(toUInt32(time), 86400) AS day_number, toUInt32(max(ingest_time))
FROM ` + db + `.events
WHERE ingest_time >= ` + dateTime(since) + ` AND identity_id != ''
GROUP BY day_number
ORDER BY day_number`
}

func rollupTouchedSQL(db string, since, day time.Time) string {
	return `SELECT identity_id, min(intDiv(toUInt32(time), 3600)), max(intDiv(toUInt32(time), 3600))
FROM ` + db + `.events
WHERE ingest_time >= ` + dateTime(since) + ` AND identity_id != ''
  AND time >= ` + dateTime(day) + ` AND time < ` + dateTime(day.AddDate(0, 0, 1)) + `
GROUP BY identity_id
ORDER BY identity_id`
}

func rollupHoursSQL(db string, ids []string, from, to time.Time, version uint64) string {
	return `INSERT INTO ` + db + `.identity_hourly (identity_id, hour, identity_kind, identity_name, events, denied, failures,
    bytes_in, bytes_out, duration_ms, first, last, bytes_in_keys, bytes_in_counts, bytes_out_keys, bytes_out_counts,
    duration_keys, duration_counts, version)
SELECT
    identity_id,
    toDateTime(intDiv(toUInt32(time), 3600) * 3600) AS hour_start,
    argMaxIf(identity_kind, (time, time_ns, identity_kind), identity_kind != ''),
    argMaxIf(identity_name, (time, time_ns, identity_name), identity_name != ''),
    count(),
    countIf(outcome = 'denied'),
    countIf(outcome = 'failure'),
    sum(bytes_in),
    sum(bytes_out),
    sum(duration_ms),
    min(time),
    max(time),
    (sumMap([` + bucketSQL("bytes_in") + `], [toUInt64(1)]) AS bytes_in_hist).1,
    bytes_in_hist.2,
    (sumMap([` + bucketSQL("bytes_out") + `], [toUInt64(1)]) AS bytes_out_hist).1,
    bytes_out_hist.2,
    (sumMap([` + bucketSQL("duration_ms") + `], [toUInt64(1)]) AS duration_hist).1,
    duration_hist.2,
    toUInt64(` + fmt.Sprint(version) + `)
FROM ` + db + `.events FINAL
WHERE identity_id IN ` + inList(ids) + `
  AND time >= ` + dateTime(from) + ` AND time < ` + dateTime(to) + `
GROUP BY identity_id, hour_start`
}

func rollupValuesSQL(db string, ids []string, from, to time.Time, version uint64) string {
	var rows strings.Builder
	for d, expr := range dimSQL {
		fmt.Fprintf(&rows, "        (identity_id, '%s', %s),\n", baseline.Dim(d), expr)
	}
	fmt.Fprintf(&rows, "        (identity_id, '%s', actor_namespace),\n", dimNamespace)
	fmt.Fprintf(&rows, "        (identity_id, '%s', actor_workload),\n", dimWorkload)
	fmt.Fprintf(&rows, "        (target_peer, '%s', identity_id)", dimCaller)
	return `INSERT INTO ` + db + `.identity_values (identity_id, day, dim, value, count, first_seen, last_seen, version)
SELECT
    dv.1 AS owner,
    toDate(intDiv(toUInt32(time), 86400)) AS day_start,
    dv.2 AS dim_name,
    dv.3 AS dim_value,
    count(),
    min(time),
    max(time),
    toUInt64(` + fmt.Sprint(version) + `)
FROM ` + db + `.events FINAL
ARRAY JOIN
    [
` + rows.String() + `
    ] AS dv
WHERE identity_id IN ` + inList(ids) + `
  AND time >= ` + dateTime(from) + ` AND time < ` + dateTime(to) + `
  AND dv.1 != '' AND dv.3 != ''
GROUP BY owner, day_start, dim_name, dim_value`
}

func historyIdentitiesSQL(db string, from time.Time) string {
	return `SELECT identity_id
FROM
(
    SELECT DISTINCT identity_id FROM ` + db + `.identity_hourly WHERE hour >= ` + dateTime(from.Truncate(time.Hour)) + `
    UNION ALL
    SELECT DISTINCT identity_id FROM ` + db + `.identity_values WHERE day >= ` + dateOf(from) + ` AND dim != '` + dimCaller + `'
)
GROUP BY identity_id
ORDER BY identity_id`
}

// historyKindsSQL reads kind and name over all hours, not only the window,
// so an identity whose window holds only values still has them.
func historyKindsSQL(db string, ids []string) string {
	return `SELECT identity_id, argMaxIf(identity_kind, hour, identity_kind != ''), argMaxIf(identity_name, hour, identity_name != '')
FROM ` + db + `.identity_hourly FINAL
WHERE identity_id IN ` + inList(ids) + `
GROUP BY identity_id`
}

func historyHoursSQL(db string, ids []string, from time.Time) string {
	return `SELECT identity_id, toUInt32(hour), events, denied, failures, bytes_in, bytes_out, duration_ms,
    toUInt32(first), toUInt32(last), bytes_in_keys, bytes_in_counts, bytes_out_keys, bytes_out_counts,
    duration_keys, duration_counts
FROM ` + db + `.identity_hourly FINAL
WHERE identity_id IN ` + inList(ids) + ` AND hour >= ` + dateTime(from.Truncate(time.Hour)) + `
ORDER BY identity_id, hour`
}

func historyValuesSQL(db string, ids []string, from time.Time) string {
	return `SELECT identity_id, dim, value, sum(count), toUInt32(min(first_seen)), toUInt32(max(last_seen))
FROM ` + db + `.identity_values FINAL
WHERE identity_id IN ` + inList(ids) + ` AND day >= ` + dateOf(from) + `
GROUP BY identity_id, dim, value`
}

func historyIssuancesSQL(db string, ids []string, from time.Time) string {
	return `SELECT identity_id, issued_credential, issuer, toUInt32(time), time_ns, issued_ttl_seconds
FROM ` + db + `.events FINAL
WHERE identity_id IN ` + inList(ids) + ` AND issued_credential != '' AND time >= ` + dateTime(from) + `
ORDER BY identity_id, time, time_ns`
}

// Statement is one SQL text the store runs, with a name for the golden file.
type Statement struct {
	Name string
	SQL  string
}

// QueryTexts returns the SQL texts Rollup, Histories, LoadBaselines, Mark
// and DropBefore run on database db, rendered with placeholder identities,
// times and versions. The modern-ClickHouse check runs exactly these texts
// (testdata/queries.golden.sql) after the schema, so what is checked there is
// what the code sends. Batch INSERTs (SaveBaselines, SetMark) send their
// rows column-wise and have no text to check beyond their column lists.
func QueryTexts(db string) []Statement {
	ids := []string{"spiffe://example.org/ns/pay/sa/api", `aws:role/123456789012/it's\here`}
	mark := time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC)
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	from := time.Date(2026, 10, 5, 7, 45, 12, 500, time.UTC)
	const version = 1793615400000000000
	return []Statement{
		{"rollup: touched days", rollupDaysSQL(db, mark.Add(-RollupOverlap))},
		{"rollup: touched identities of a day", rollupTouchedSQL(db, mark.Add(-RollupOverlap), day)},
		{"rollup: recompute hours", rollupHoursSQL(db, ids, day.Add(9*time.Hour), day.Add(11*time.Hour), version)},
		{"rollup: recompute values of a day", rollupValuesSQL(db, ids, day, day.AddDate(0, 0, 1), version)},
		{"histories: every identity", historyIdentitiesSQL(db, from)},
		{"histories: kinds and names", historyKindsSQL(db, ids)},
		{"histories: hours", historyHoursSQL(db, ids, from)},
		{"histories: values", historyValuesSQL(db, ids, from)},
		{"histories: issuances", historyIssuancesSQL(db, ids, from)},
		{"baselines: every identity", baselineIdentitiesSQL(db)},
		{"baselines: newest versions", loadBaselinesSQL(db, ids)},
		{"mark", markSQL(db, rollupMarkName)},
		{"retention: partitions", partitionsSQL(db, "", "events", day)},
		{"retention: drop a partition", dropPartitionSQL(db, "", "events", "202609")},
		{"audit: by id", loadAuditSQL(db, response.AuditQuery{IDs: ids})},
		{"audit: due retries", loadAuditSQL(db, response.AuditQuery{Statuses: []response.Status{response.StatusQueued}, DueBy: mark, Limit: 100})},
		{"audit: window", loadAuditSQL(db, response.AuditQuery{Since: from, Statuses: []response.Status{response.StatusSucceeded, response.StatusRunning}})},
		{"evidence", evidenceSQL(db, ids[0], []string{"ev-1", "ev-2"})},
		{"findings sent since", sentFindingsSQL(db, from)},
	}
}
