package chstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas/migrations"
)

var errNoIdentity = errors.New("baseline without an identity id")

var baselineColumnNames = []string{
	"identity_id", "version", "built_at", "data_through", "class", "cohort",
	"first_seen", "last_seen", "events", "data",
}

// SaveBaselines stores one new version of each baseline in one INSERT: the
// baseline as JSON in data, with copies of its headline fields beside it.
// The batch is all or nothing: a baseline that cannot be encoded fails it
// before anything is sent.
func (s *Store) SaveBaselines(ctx context.Context, bs []*baseline.Baseline) error {
	if len(bs) == 0 {
		return nil
	}
	n := len(bs)
	var (
		id, class, cohort, data            = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		version, events                    = make([]uint64, n), make([]uint64, n)
		builtAt, through, firstSeen, lastS = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	)
	for i, b := range bs {
		if b == nil || b.Identity.ID == "" {
			return fmt.Errorf("save baselines: %w", errNoIdentity)
		}
		if b.Version < 0 {
			return fmt.Errorf("save baseline %s: negative version %d", b.Identity.ID, b.Version)
		}
		j, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("save baseline %s: %w", b.Identity.ID, err)
		}
		id[i], class[i], cohort[i], data[i] = b.Identity.ID, b.Class, b.Cohort, string(j)
		version[i], events[i] = uint64(b.Version), b.Events
		builtAt[i], through[i] = dateTimeValue(b.BuiltAt), dateTimeValue(b.DataThrough)
		firstSeen[i], lastS[i] = dateTimeValue(b.FirstSeen), dateTimeValue(b.LastSeen)
	}
	return s.insertColumns(ctx, "baselines", baselineColumnNames, []any{
		id, version, builtAt, through, class, cohort, firstSeen, lastS, events, data,
	})
}

// dateTimeValue clamps t to what a DateTime holds; the zero time is the
// epoch, which stands for "unknown" (see orEpoch).
func dateTimeValue(t time.Time) time.Time {
	return time.Unix(min(max(t.Unix(), 0), math.MaxUint32), 0).UTC()
}

// LoadBaselines calls fn with the newest stored baseline of each identity in
// ids that has one, in the order given without repeats (every identity, in
// id order, when ids is nil), reading a chunk of identities at a time.
func (s *Store) LoadBaselines(ctx context.Context, ids []string, fn func(*baseline.Baseline) error) error {
	if ids == nil {
		err := s.query(ctx, "baseline identities", baselineIdentitiesSQL(s.db), func(scan func(...any) error) error {
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
		chunk := ids[lo:hi]
		found := make(map[string]string, len(chunk))
		err := s.query(ctx, "baselines", loadBaselinesSQL(s.db, chunk), func(scan func(...any) error) error {
			var id, data string
			if err := scan(&id, &data); err != nil {
				return err
			}
			found[id] = data
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range chunk {
			data, ok := found[id]
			if !ok {
				continue
			}
			var b baseline.Baseline
			if err := json.Unmarshal([]byte(data), &b); err != nil {
				return fmt.Errorf("load baseline %s: %w", id, err)
			}
			if err := fn(&b); err != nil {
				return err
			}
		}
	}
	return nil
}

func baselineIdentitiesSQL(db string) string {
	return `SELECT DISTINCT identity_id FROM ` + db + `.baselines ORDER BY identity_id`
}

// loadBaselinesSQL takes the newest version with FINAL: it streams one row
// per identity, where argMax(data, version) would hold every candidate's
// JSON in the aggregation.
func loadBaselinesSQL(db string, ids []string) string {
	return `SELECT identity_id, data
FROM ` + db + `.baselines FINAL
WHERE identity_id IN ` + inList(ids)
}

// rollupMarkName is the rollup_marks row of Rollup's mark.
const rollupMarkName = "rollup"

func markSQL(db, name string) string {
	return `SELECT toUInt32(mark) FROM ` + db + `.rollup_marks FINAL WHERE name = ` + quote(name)
}

// Mark returns the rollup mark SetMark kept (zero when none). Marks have
// whole-second precision, like the ingest times they are compared with.
func (s *Store) Mark(ctx context.Context) (time.Time, error) {
	var mark time.Time
	err := s.query(ctx, "rollup mark", markSQL(s.db, rollupMarkName), func(scan func(...any) error) error {
		var sec uint32
		if err := scan(&sec); err != nil {
			return err
		}
		if sec > 0 {
			mark = time.Unix(int64(sec), 0).UTC()
		}
		return nil
	})
	return mark, err
}

// SetMark keeps the rollup mark; a newer updated_at replaces the older row.
func (s *Store) SetMark(ctx context.Context, mark time.Time) error {
	err := s.insertColumns(ctx, "rollup_marks", []string{"name", "mark", "updated_at"}, []any{
		[]string{rollupMarkName}, []time.Time{dateTimeValue(mark)}, []time.Time{time.Now().UTC().Truncate(time.Second)},
	})
	if err != nil {
		return fmt.Errorf("set rollup mark: %w", err)
	}
	return nil
}

// retainedTables are the tables DropBefore may thin out: each is partitioned
// by month of its time column. Baselines and marks are not: they hold one
// current row per key however old.
var retainedTables = []string{"events", "identity_hourly", "identity_values", "findings", "response_audit"}

// monthPartition is what system.parts shows for a toYYYYMM partition.
var monthPartition = regexp.MustCompile(`^[0-9]{6}$`)

// DropBefore drops the monthly partitions of table that end at or before
// before and returns their names (YYYYMM), oldest first. Retention works by
// whole partitions because dropping one is a metadata operation, where
// deleting rows would rewrite every part. Months are those of the server's
// time zone, as the partition key computes them.
func (s *Store) DropBefore(ctx context.Context, table string, before time.Time) ([]string, error) {
	if !slices.Contains(retainedTables, table) {
		return nil, fmt.Errorf("drop before: table %q is not one of %v", table, retainedTables)
	}
	var parts []string
	err := s.query(ctx, "partitions of "+table, partitionsSQL(s.db, s.cluster, table, before), func(scan func(...any) error) error {
		var p string
		if err := scan(&p); err != nil {
			return err
		}
		if !monthPartition.MatchString(p) {
			return fmt.Errorf("partition %q is not a month", p)
		}
		parts = append(parts, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop before: %w", err)
	}
	var dropped []string
	for _, p := range parts {
		if err := s.conn.Exec(ctx, dropPartitionSQL(s.db, s.cluster, table, p)); err != nil {
			return dropped, fmt.Errorf("drop %s partition %s: %w", table, p, err)
		}
		dropped = append(dropped, p)
	}
	return dropped, nil
}

// partitionsSQL lists the months of table wholly before before: a month
// older than before's own month ends at or before before. On a cluster the
// parts are those of the local tables on every shard (one replica of each,
// as a shard's replicas hold the same partitions); a Distributed table has
// none.
func partitionsSQL(db, cluster, table string, before time.Time) string {
	parts := "system.parts"
	if cluster != "" {
		parts, table = "cluster("+quote(cluster)+", system, parts)", table+migrations.LocalSuffix
	}
	return `SELECT partition
FROM ` + parts + `
WHERE database = ` + quote(db) + ` AND table = ` + quote(table) + ` AND active
  AND toUInt32OrZero(partition) < toYYYYMM(` + dateTime(before) + `)
GROUP BY partition
ORDER BY partition`
}

// dropPartitionSQL drops a partition of table; on a cluster, of its local
// tables on every shard, since a Distributed table holds no partitions.
func dropPartitionSQL(db, cluster, table, partition string) string {
	if cluster != "" {
		return `ALTER TABLE ` + db + `.` + table + migrations.LocalSuffix + ` ON CLUSTER ` + cluster + ` DROP PARTITION ` + partition
	}
	return `ALTER TABLE ` + db + `.` + table + ` DROP PARTITION ` + partition
}
