-- Repeats of a finding merge into one with a count; a later repeat sends the
-- finding again as its next revision, which replaces the stored row (newer
-- created_at). Readers wanting the latest revision without FINAL take
-- argMax(…, revision).
ALTER TABLE {{db}}.findings ADD COLUMN count UInt32 DEFAULT 1;
ALTER TABLE {{db}}.findings ADD COLUMN revision UInt32 DEFAULT 0;
