-- The response audit trail, version 2 (SPEC §6): one row per planned action,
-- keyed by its id (the idempotency key), rewritten at every change of status
-- (planned, pending approval, running, succeeded, undone, …). version is the
-- nanosecond of the rewrite, so the newest status wins even within a second;
-- FINAL reads it. request holds the action and its target (JSON), undo what
-- the provider needs to reverse it. 0005's table was never written to, so it
-- is replaced rather than altered.
DROP TABLE IF EXISTS {{db}}.response_audit;
CREATE TABLE IF NOT EXISTS {{db}}.response_audit
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(time)
ORDER BY id;
