CREATE DATABASE IF NOT EXISTS nhisentry ON CLUSTER prod;

CREATE TABLE IF NOT EXISTS nhisentry.schema_migrations ON CLUSTER prod (version UInt32, name String, applied_at DateTime) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/nhisentry/schema_migrations', '{shard}-{replica}') ORDER BY version;

-- 0001_events
CREATE TABLE IF NOT EXISTS nhisentry.events_local ON CLUSTER prod
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/events/0001', '{replica}', ingest_time)
PARTITION BY toYYYYMM(time)
ORDER BY (identity_id, time, id);

CREATE TABLE IF NOT EXISTS nhisentry.events ON CLUSTER prod AS nhisentry.events_local
ENGINE = Distributed(prod, nhisentry, events_local, cityHash64(identity_id));

-- 0002_findings
CREATE TABLE IF NOT EXISTS nhisentry.findings_local ON CLUSTER prod
(
    id            String,
    first_seen    DateTime,
    last_seen     DateTime,
    detector      String,
    rule_id       String,
    identity_id   String,
    identity_kind String,
    severity      String,
    score         UInt8,
    title         String,
    explanation   String,
    technique     String,
    event_ids     Array(String),
    pattern       String,
    observed      String,
    baseline      String,
    created_at    DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/findings/0002', '{replica}', created_at)
PARTITION BY toYYYYMM(first_seen)
ORDER BY id;

CREATE TABLE IF NOT EXISTS nhisentry.findings ON CLUSTER prod AS nhisentry.findings_local
ENGINE = Distributed(prod, nhisentry, findings_local, cityHash64(identity_id));

-- 0003_rollups
CREATE TABLE IF NOT EXISTS nhisentry.identity_hourly_local ON CLUSTER prod
(
    identity_id      String,
    hour             DateTime,
    identity_kind    String,
    identity_name    String,
    events           UInt64,
    denied           UInt64,
    failures         UInt64,
    bytes_in         UInt64,
    bytes_out        UInt64,
    duration_ms      Float64,
    first            DateTime,
    last             DateTime,
    bytes_in_keys    Array(UInt8),
    bytes_in_counts  Array(UInt64),
    bytes_out_keys   Array(UInt8),
    bytes_out_counts Array(UInt64),
    duration_keys    Array(UInt8),
    duration_counts  Array(UInt64),
    version          UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/identity_hourly/0003', '{replica}', version)
PARTITION BY toYYYYMM(hour)
ORDER BY (identity_id, hour);

CREATE TABLE IF NOT EXISTS nhisentry.identity_hourly ON CLUSTER prod AS nhisentry.identity_hourly_local
ENGINE = Distributed(prod, nhisentry, identity_hourly_local, cityHash64(identity_id));

CREATE TABLE IF NOT EXISTS nhisentry.identity_values_local ON CLUSTER prod
(
    identity_id String,
    day         Date,
    dim         String,
    value       String,
    count       UInt64,
    first_seen  DateTime,
    last_seen   DateTime,
    version     UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/identity_values/0003', '{replica}', version)
PARTITION BY toYYYYMM(day)
ORDER BY (identity_id, dim, value, day);

CREATE TABLE IF NOT EXISTS nhisentry.identity_values ON CLUSTER prod AS nhisentry.identity_values_local
ENGINE = Distributed(prod, nhisentry, identity_values_local, cityHash64(identity_id));

CREATE TABLE IF NOT EXISTS nhisentry.rollup_marks_local ON CLUSTER prod
(
    name       String,
    mark       DateTime,
    updated_at DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/rollup_marks/0003', '{replica}', updated_at)
ORDER BY name;

CREATE TABLE IF NOT EXISTS nhisentry.rollup_marks ON CLUSTER prod AS nhisentry.rollup_marks_local
ENGINE = Distributed(prod, nhisentry, rollup_marks_local, cityHash64(name));

-- 0004_baselines
CREATE TABLE IF NOT EXISTS nhisentry.baselines_local ON CLUSTER prod
(
    identity_id  String,
    version      UInt64,
    built_at     DateTime,
    data_through DateTime,
    class        String,
    cohort       String,
    first_seen   DateTime,
    last_seen    DateTime,
    events       UInt64,
    data         String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/baselines/0004', '{replica}', version)
ORDER BY identity_id;

CREATE TABLE IF NOT EXISTS nhisentry.baselines ON CLUSTER prod AS nhisentry.baselines_local
ENGINE = Distributed(prod, nhisentry, baselines_local, cityHash64(identity_id));

-- 0005_response_audit
CREATE TABLE IF NOT EXISTS nhisentry.response_audit_local ON CLUSTER prod
(
    id              String,
    time            DateTime,
    updated_at      DateTime,
    finding_id      String,
    identity_id     String,
    action          String,
    provider        String,
    mode            String,
    decision        String,
    result          String,
    detail          String,
    idempotency_key String,
    actor           String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/response_audit/0005', '{replica}', updated_at)
PARTITION BY toYYYYMM(time)
ORDER BY id;

CREATE TABLE IF NOT EXISTS nhisentry.response_audit ON CLUSTER prod AS nhisentry.response_audit_local
ENGINE = Distributed(prod, nhisentry, response_audit_local, cityHash64(identity_id));

-- 0006_finding_counts
ALTER TABLE nhisentry.findings_local ON CLUSTER prod ADD COLUMN count UInt32 DEFAULT 1;

DROP TABLE IF EXISTS nhisentry.findings ON CLUSTER prod;

CREATE TABLE IF NOT EXISTS nhisentry.findings ON CLUSTER prod AS nhisentry.findings_local
ENGINE = Distributed(prod, nhisentry, findings_local, cityHash64(identity_id));

ALTER TABLE nhisentry.findings_local ON CLUSTER prod ADD COLUMN revision UInt32 DEFAULT 0;

DROP TABLE IF EXISTS nhisentry.findings ON CLUSTER prod;

CREATE TABLE IF NOT EXISTS nhisentry.findings ON CLUSTER prod AS nhisentry.findings_local
ENGINE = Distributed(prod, nhisentry, findings_local, cityHash64(identity_id));

-- 0007_response_actions
DROP TABLE IF EXISTS nhisentry.response_audit ON CLUSTER prod;

DROP TABLE IF EXISTS nhisentry.response_audit_local ON CLUSTER prod;

CREATE TABLE IF NOT EXISTS nhisentry.response_audit_local ON CLUSTER prod
(
    id            String,
    time          DateTime,
    updated_at    DateTime,
    version       UInt64,
    finding_id    String,
    identity_id   String,
    action        String,
    provider      String,
    mode          String,
    status        String,
    decision      String,
    detail        String,
    actor         String,
    blast_radius  UInt32,
    attempts      UInt32,
    next_attempt  DateTime,
    request       String,
    undo          String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/response_audit/0007', '{replica}', version)
PARTITION BY toYYYYMM(time)
ORDER BY id;

CREATE TABLE IF NOT EXISTS nhisentry.response_audit ON CLUSTER prod AS nhisentry.response_audit_local
ENGINE = Distributed(prod, nhisentry, response_audit_local, cityHash64(identity_id));

