package chstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// eventColumns holds a batch of events column by column: appending whole
// columns costs the client far less CPU than appending row by row.
type eventColumns struct {
	id, family, format, provider, account, cluster, region             []string
	identityID, identityKind, identityName, credentialID, credentialTy []string
	actorIP, actorUA, actorWorkload, actorNamespace, actorNode         []string
	actorPeer, actorSession, action, service, targetResource           []string
	targetPeer, outcome, errorCode, issuedCred, issuedType             []string
	issuedSubject, issuer, issuedRequester, topic                      []string
	time, ingestTime, credIssued, credExpires                          []time.Time
	timeNS                                                             []uint32
	status, partition                                                  []int32
	bytesIn, bytesOut                                                  []uint64
	duration                                                           []float64
	issuedSANs                                                         [][]string
	issuedTTL, offset                                                  []int64
}

// eventColumnNames is the INSERT column list; the order matches columns().
var eventColumnNames = []string{
	"id", "time", "time_ns", "ingest_time", "family", "format", "provider", "account", "cluster", "region",
	"identity_id", "identity_kind", "identity_name", "credential_id", "credential_type",
	"credential_issued_at", "credential_expires_at", "actor_ip", "actor_user_agent", "actor_workload",
	"actor_namespace", "actor_node", "actor_peer", "actor_session", "action", "service",
	"target_resource", "target_peer", "outcome", "status_code", "error_code", "bytes_in", "bytes_out",
	"duration_ms", "issued_credential", "issued_type", "issued_subject", "issued_sans", "issuer",
	"issued_ttl_seconds", "issued_requester", "topic", "partition", "offset",
}

func (c *eventColumns) columns() []any {
	return []any{
		c.id, c.time, c.timeNS, c.ingestTime, c.family, c.format, c.provider, c.account, c.cluster, c.region,
		c.identityID, c.identityKind, c.identityName, c.credentialID, c.credentialTy,
		c.credIssued, c.credExpires, c.actorIP, c.actorUA, c.actorWorkload,
		c.actorNamespace, c.actorNode, c.actorPeer, c.actorSession, c.action, c.service,
		c.targetResource, c.targetPeer, c.outcome, c.status, c.errorCode, c.bytesIn, c.bytesOut,
		c.duration, c.issuedCred, c.issuedType, c.issuedSubject, c.issuedSANs, c.issuer,
		c.issuedTTL, c.issuedRequester, c.topic, c.partition, c.offset,
	}
}

// epoch stands for "unknown" in DateTime columns, which cannot be NULL
// without Nullable's cost on every row.
var epoch = time.Unix(0, 0).UTC()

func orEpoch(t schemas.Time) time.Time {
	if t.IsZero() {
		return epoch
	}
	return t.Time
}

func (c *eventColumns) add(e *schemas.Event) {
	c.id = append(c.id, e.ID)
	c.time = append(c.time, e.Time.Time)
	c.timeNS = append(c.timeNS, uint32(e.Time.Nanosecond()))
	c.ingestTime = append(c.ingestTime, orEpoch(e.IngestTime))
	c.family = append(c.family, string(e.Source.Family))
	c.format = append(c.format, e.Source.Format)
	c.provider = append(c.provider, e.Source.Provider)
	c.account = append(c.account, e.Source.Account)
	c.cluster = append(c.cluster, e.Source.Cluster)
	c.region = append(c.region, e.Source.Region)
	c.identityID = append(c.identityID, e.Identity.ID)
	c.identityKind = append(c.identityKind, string(e.Identity.Kind))
	c.identityName = append(c.identityName, e.Identity.Name)
	c.credentialID = append(c.credentialID, e.Credential.ID)
	c.credentialTy = append(c.credentialTy, e.Credential.Type)
	c.credIssued = append(c.credIssued, orEpoch(e.Credential.IssuedAt))
	c.credExpires = append(c.credExpires, orEpoch(e.Credential.ExpiresAt))
	c.actorIP = append(c.actorIP, e.Actor.IP)
	c.actorUA = append(c.actorUA, e.Actor.UserAgent)
	c.actorWorkload = append(c.actorWorkload, e.Actor.Workload)
	c.actorNamespace = append(c.actorNamespace, e.Actor.Namespace)
	c.actorNode = append(c.actorNode, e.Actor.Node)
	c.actorPeer = append(c.actorPeer, e.Actor.Peer)
	c.actorSession = append(c.actorSession, e.Actor.Session)
	c.action = append(c.action, e.Action)
	c.service = append(c.service, e.Service)
	c.targetResource = append(c.targetResource, e.Target.Resource)
	c.targetPeer = append(c.targetPeer, e.Target.Peer)
	c.outcome = append(c.outcome, string(e.Outcome.Result))
	c.status = append(c.status, int32(e.Outcome.Status))
	c.errorCode = append(c.errorCode, e.Outcome.ErrorCode)
	c.bytesIn = append(c.bytesIn, e.BytesIn)
	c.bytesOut = append(c.bytesOut, e.BytesOut)
	c.duration = append(c.duration, e.DurationMS)
	is := e.Issuance
	if is == nil {
		is = &schemas.Issuance{}
	}
	c.issuedCred = append(c.issuedCred, is.Credential)
	c.issuedType = append(c.issuedType, is.CredentialType)
	c.issuedSubject = append(c.issuedSubject, is.Subject)
	sans := is.SANs
	if sans == nil {
		sans = []string{}
	}
	c.issuedSANs = append(c.issuedSANs, sans)
	c.issuer = append(c.issuer, is.Issuer)
	c.issuedTTL = append(c.issuedTTL, is.TTLSeconds)
	c.issuedRequester = append(c.issuedRequester, is.Requester)
	c.topic = append(c.topic, e.Provenance.Topic)
	c.partition = append(c.partition, int32(e.Provenance.Partition))
	c.offset = append(c.offset, e.Provenance.Offset)
}

// WriteEvents stores events in one INSERT. It returns only when the server
// has acknowledged the batch, because offsets are committed next.
func (s *Store) WriteEvents(ctx context.Context, events []schemas.Event) error {
	if len(events) == 0 {
		return nil
	}
	var cols eventColumns
	for i := range events {
		cols.add(&events[i])
	}
	return s.insertColumns(ctx, "events", eventColumnNames, cols.columns())
}

func (s *Store) insertColumns(ctx context.Context, table string, names []string, cols []any) error {
	query := fmt.Sprintf("INSERT INTO %s.%s (%s)", s.db, table, strings.Join(names, ", "))
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("insert %s: prepare: %w", table, err)
	}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			batch.Abort()
			return fmt.Errorf("insert %s: column %s: %w", table, names[i], err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %s: send %d rows: %w", table, batch.Rows(), err)
	}
	return nil
}
