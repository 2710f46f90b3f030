-- Computed baselines, one versioned row per identity (SPEC §4): the builder
-- inserts a new version and readers take the newest (FINAL or argMax), so a
-- rebuild never updates in place. data is the baseline.Baseline as JSON; the
-- other columns are copies for listing and filtering without parsing it.
CREATE TABLE IF NOT EXISTS {{db}}.baselines
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
ENGINE = ReplacingMergeTree(version)
ORDER BY identity_id;
