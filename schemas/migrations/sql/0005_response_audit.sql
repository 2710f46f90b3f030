-- The response audit trail (SPEC §6): one row per planned action, keyed by
-- its id. time is when the action was first planned and never changes, so a
-- row's partition is stable; updated_at orders the rewrites of one action
-- (planned, approved, done) and a replayed write collapses into the row
-- already stored.
CREATE TABLE IF NOT EXISTS {{db}}.response_audit
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
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(time)
ORDER BY id;
