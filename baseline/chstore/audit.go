package chstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/schemas"
)

var auditColumnNames = []string{
	"id", "time", "updated_at", "version", "finding_id", "identity_id", "action", "provider", "mode",
	"status", "decision", "detail", "actor", "blast_radius", "attempts", "next_attempt", "request", "undo",
}

// WriteAudit implements response.AuditStore: each record is a new version
// of its row.
func (s *Store) WriteAudit(ctx context.Context, recs []response.Record) error {
	if len(recs) == 0 {
		return nil
	}
	n := len(recs)
	var (
		id, finding, identity, action, provider = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		mode, status, decision, detail, actor   = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		request, undo                           = make([]string, n), make([]string, n)
		at, updated, next                       = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		version                                 = make([]uint64, n)
		radius, attempts                        = make([]uint32, n), make([]uint32, n)
	)
	for i := range recs {
		r := &recs[i]
		req, err := json.Marshal(r.Request)
		if err != nil {
			return fmt.Errorf("audit %s: encode request: %w", r.ID, err)
		}
		u, err := json.Marshal(r.Undo)
		if err != nil {
			return fmt.Errorf("audit %s: encode undo state: %w", r.ID, err)
		}
		id[i], finding[i], identity[i], action[i], provider[i] = r.ID, r.FindingID, r.IdentityID, string(r.Action), r.Provider
		mode[i], status[i], decision[i], detail[i], actor[i] = string(r.Mode), string(r.Status), r.Decision, r.Detail, r.Actor
		request[i], undo[i] = string(req), string(u)
		at[i], updated[i], next[i] = orEpochTime(r.Time), orEpochTime(r.UpdatedAt), orEpochTime(r.NextAttempt)
		version[i] = r.Version
		radius[i], attempts[i] = uint32(max(r.BlastRadius, 0)), uint32(max(r.Attempts, 0))
	}
	return s.insertColumns(ctx, "response_audit", auditColumnNames, []any{
		id, at, updated, version, finding, identity, action, provider, mode,
		status, decision, detail, actor, radius, attempts, next, request, undo,
	})
}

func orEpochTime(t time.Time) time.Time {
	if t.IsZero() {
		return epoch
	}
	return t.UTC()
}

// LoadAudit implements response.AuditStore.
func (s *Store) LoadAudit(ctx context.Context, q response.AuditQuery) ([]response.Record, error) {
	newest := map[string]int{}
	var out []response.Record
	err := s.query(ctx, "response audit", loadAuditSQL(s.db, q), func(scan func(...any) error) error {
		var (
			r                               response.Record
			action, mode, status, req, undo string
			radius, attempts                uint32
		)
		if err := scan(&r.ID, &r.Time, &r.UpdatedAt, &r.Version, &r.FindingID, &r.IdentityID, &action, &r.Provider,
			&mode, &status, &r.Decision, &r.Detail, &r.Actor, &radius, &attempts, &r.NextAttempt, &req, &undo); err != nil {
			return err
		}
		r.Action, r.Mode, r.Status = response.Action(action), response.Mode(mode), response.Status(status)
		r.BlastRadius, r.Attempts = int(radius), int(attempts)
		if err := json.Unmarshal([]byte(req), &r.Request); err != nil {
			return fmt.Errorf("audit %s: request: %w", r.ID, err)
		}
		if err := json.Unmarshal([]byte(undo), &r.Undo); err != nil {
			return fmt.Errorf("audit %s: undo state: %w", r.ID, err)
		}
		for _, t := range []*time.Time{&r.Time, &r.UpdatedAt, &r.NextAttempt} {
			if t.Equal(epoch) {
				*t = time.Time{}
			} else {
				*t = t.UTC()
			}
		}
		// FINAL collapses versions within a partition; keep the newest
		// across partitions too.
		if i, ok := newest[r.ID]; ok {
			if out[i].Version < r.Version {
				out[i] = r
			}
			return nil
		}
		newest[r.ID] = len(out)
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Status filters apply to the newest version only.
	if len(q.Statuses) > 0 {
		out = slices.DeleteFunc(out, func(r response.Record) bool { return !slices.Contains(q.Statuses, r.Status) })
	}
	return out, nil
}

func loadAuditSQL(db string, q response.AuditQuery) string {
	var where []string
	if len(q.IDs) > 0 {
		where = append(where, "id IN "+inList(q.IDs))
	}
	if len(q.Statuses) > 0 {
		st := make([]string, len(q.Statuses))
		for i, s := range q.Statuses {
			st[i] = string(s)
		}
		where = append(where, "status IN "+inList(st))
	}
	if !q.DueBy.IsZero() {
		where = append(where, "next_attempt <= "+dateTime(q.DueBy))
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= "+dateTime(q.Since))
	}
	sql := "SELECT id, time, updated_at, version, finding_id, identity_id, action, provider, mode, status, decision, detail, actor, blast_radius, attempts, next_attempt, request, undo FROM " +
		db + ".response_audit FINAL"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY time, id"
	if q.Limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	return sql
}

// Evidence returns the stored events of identity with the given ids, oldest
// first: what a response acts on (the credential presented, the namespace).
func (s *Store) Evidence(ctx context.Context, identity string, ids []string) ([]schemas.Event, error) {
	var out []schemas.Event
	err := s.query(ctx, "evidence", evidenceSQL(s.db, identity, ids), func(scan func(...any) error) error {
		var (
			ev                   schemas.Event
			at                   time.Time
			family, kind, result string
		)
		if err := scan(&ev.ID, &at, &family, &ev.Source.Account, &ev.Source.Cluster, &ev.Identity.ID, &kind,
			&ev.Credential.ID, &ev.Credential.Type, &ev.Actor.IP, &ev.Actor.Namespace, &ev.Actor.Node, &ev.Actor.Workload,
			&ev.Action, &ev.Target.Resource, &result); err != nil {
			return err
		}
		ev.Time, ev.Source.Family, ev.Identity.Kind, ev.Outcome.Result = schemas.At(at), schemas.Family(family), schemas.IdentityKind(kind), schemas.Result(result)
		out = append(out, ev)
		return nil
	})
	return out, err
}

func evidenceSQL(db, identity string, ids []string) string {
	return "SELECT id, time, family, account, cluster, identity_id, identity_kind, credential_id, credential_type, actor_ip, actor_namespace, actor_node, actor_workload, action, target_resource, outcome FROM " +
		db + ".events FINAL WHERE identity_id = " + quote(identity) + " AND id IN " + inList(ids) + " ORDER BY time, id"
}
