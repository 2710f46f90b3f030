-- Normalized events, one row per schemas.Event. ReplacingMergeTree on a
-- sorting key that ends in the deterministic event id: a replayed record
-- collapses into the row already stored, and readers that must not see the
-- copy before the merge use FINAL.
CREATE TABLE IF NOT EXISTS {{db}}.events
(
    id                    String,
    time                  DateTime,
    time_ns               UInt32,
    ingest_time           DateTime,
    family                String,
    format                String,
    provider              String,
    account               String,
    cluster               String,
    region                String,
    identity_id           String,
    identity_kind         String,
    identity_name         String,
    credential_id         String,
    credential_type       String,
    credential_issued_at  DateTime,
    credential_expires_at DateTime,
    actor_ip              String,
    actor_user_agent      String,
    actor_workload        String,
    actor_namespace       String,
    actor_node            String,
    actor_peer            String,
    actor_session         String,
    action                String,
    service               String,
    target_resource       String,
    target_peer           String,
    outcome               String,
    status_code           Int32,
    error_code            String,
    bytes_in              UInt64,
    bytes_out             UInt64,
    duration_ms           Float64,
    issued_credential     String,
    issued_type           String,
    issued_subject        String,
    issued_sans           Array(String),
    issuer                String,
    issued_ttl_seconds    Int64,
    issued_requester      String,
    topic                 String,
    partition             Int32,
    offset                Int64
)
ENGINE = ReplacingMergeTree(ingest_time)
PARTITION BY toYYYYMM(time)
ORDER BY (identity_id, time, id);
