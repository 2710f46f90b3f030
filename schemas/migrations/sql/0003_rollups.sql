-- Hourly per-identity rollups, the builder's input (SPEC §4). Rollup
-- recomputes a touched (identity, hour) completely from events FINAL and
-- inserts it with a newer version, so rolling the same events up twice
-- replaces a row instead of adding to it; readers use FINAL.
-- The histograms count events by log2 bucket (baseline.Bucket) as parallel
-- key/count arrays built with sumMap, because they merge exactly across
-- hours and ClickHouse 18.16 has no Map type. The identity's kind and name
-- (the latest non-empty ones of the hour) ride along so Histories needs no
-- scan of the events.
CREATE TABLE IF NOT EXISTS {{db}}.identity_hourly
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (identity_id, hour);

-- Known values per identity, dimension and day with first/last use and a
-- count; a touched day is recomputed whole, like an hour above. The network
-- dimension holds the raw address: 18.16 cannot compute /24 and /64 prefixes
-- portably, so readers map addresses to networks with baseline.Network.
-- Three internal dimensions ride along so Histories reads one table: the
-- actor namespace and workload counts (_namespace, _workload) and, under
-- the callee's identity_id, each caller of a mesh peer (_caller), which
-- makes "who calls X" a primary-key lookup instead of a scan.
CREATE TABLE IF NOT EXISTS {{db}}.identity_values
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (identity_id, dim, value, day);

-- How far the rollups have read the events table, by ingest time. One row
-- per name; a newer updated_at replaces the older row.
CREATE TABLE IF NOT EXISTS {{db}}.rollup_marks
(
    name       String,
    mark       DateTime,
    updated_at DateTime
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name;
