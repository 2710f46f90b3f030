-- Findings, one row per deterministic finding id; a replayed finding
-- replaces the stored one instead of adding a second row.
CREATE TABLE IF NOT EXISTS {{db}}.findings
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
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(first_seen)
ORDER BY id;
