package chstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

// LoadSeeds rebuilds every identity's baseline history from stored events:
// first/last seen and counts, the known values of each tracked dimension
// with when each was first used, and the hourly windows of the last week.
// FINAL makes a replayed event count once even before ClickHouse merged it.
func (s *Store) LoadSeeds(ctx context.Context, fn func(*baseline.Seed)) error {
	seeds := map[string]*baseline.Seed{}
	err := s.query(ctx, "identities",
		"SELECT identity_id, any(identity_kind), any(identity_name), min(time), max(time), count() FROM "+s.db+".events FINAL GROUP BY identity_id",
		func(scan func(...any) error) error {
			var sd baseline.Seed
			var kind string
			if err := scan(&sd.Identity.ID, &kind, &sd.Identity.Name, &sd.FirstSeen, &sd.LastSeen, &sd.Events); err != nil {
				return err
			}
			sd.Identity.Kind = schemas.IdentityKind(kind)
			seeds[sd.Identity.ID] = &sd
			return nil
		})
	if err != nil {
		return err
	}
	known := []struct {
		dim    baseline.Dim
		column string
	}{{baseline.DimAction, "action"}, {baseline.DimPeer, "target_peer"}, {baseline.DimNetwork, "actor_ip"}}
	for _, k := range known {
		q := fmt.Sprintf("SELECT identity_id, %[1]s, min(time) FROM %[2]s.events FINAL WHERE %[1]s != '' GROUP BY identity_id, %[1]s", k.column, s.db)
		err := s.query(ctx, "known "+k.dim.String(), q, func(scan func(...any) error) error {
			var id, v string
			var first time.Time
			if err := scan(&id, &v, &first); err != nil {
				return err
			}
			sd := seeds[id]
			if sd == nil {
				return nil
			}
			if k.dim == baseline.DimNetwork {
				// Networks are derived from addresses; several addresses
				// share one, and add keeps the first.
				if v = baseline.Network(v); v == "" {
					return nil
				}
			}
			sd.Known[k.dim] = append(sd.Known[k.dim], baseline.SeedValue{Value: v, FirstSeen: first})
			return nil
		})
		if err != nil {
			return err
		}
	}
	q := fmt.Sprintf(`SELECT identity_id, toUInt64(toStartOfHour(time)) AS h, count(), countIf(outcome = 'denied'), countIf(outcome = 'failure'), sum(bytes_out)
FROM %[1]s.events FINAL
WHERE time >= (SELECT max(time) FROM %[1]s.events) - %[2]d
GROUP BY identity_id, h`, s.db, baseline.HistoryHours*3600)
	err = s.query(ctx, "hourly windows", q, func(scan func(...any) error) error {
		var id string
		var h, count, denied, failures, bytesOut uint64
		if err := scan(&id, &h, &count, &denied, &failures, &bytesOut); err != nil {
			return err
		}
		if sd := seeds[id]; sd != nil {
			sd.Hourly = append(sd.Hourly, baseline.Window{
				Hour: int64(h / 3600), Count: uint32(count), Denied: uint32(denied),
				Failures: uint32(failures), BytesOut: bytesOut,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, sd := range seeds {
		fn(sd)
	}
	return nil
}

// query runs q and calls row for every result row.
func (s *Store) query(ctx context.Context, what, q string, row func(scan func(...any) error) error) error {
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return fmt.Errorf("load %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}
