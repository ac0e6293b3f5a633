-- The funnel's figures kept as the events arrive (projections/src/funnel.rs), so a read costs a
-- handful of rows however long the history is. Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.

-- Leads standing in each stage now; a stage with none has no row.
CREATE TABLE funnel_stage_counts (
    stage  TEXT    PRIMARY KEY,
    leads  BIGINT  NOT NULL
);

-- Leads that ever reached each funnel stage (rank 0 new … 6 active; a lead counts at every rank
-- up to its furthest), for all leads (group_kind 'all', key '') and per 'capture_week',
-- 'source' and 'partner' ('(none)' for a lead without one). Counts only ever grow.
CREATE TABLE funnel_reached_counts (
    group_kind  TEXT    NOT NULL,
    group_key   TEXT    NOT NULL,
    stage_rank  BIGINT  NOT NULL,
    leads       BIGINT  NOT NULL,
    PRIMARY KEY (group_kind, group_key, stage_rank)
);

-- How many completed stays in each stage lasted exactly stay_us. The median moves along this
-- key; being a key, it is not an index a rebuild sets aside.
CREATE TABLE funnel_stay_lengths (
    stage    TEXT    NOT NULL,
    stay_us  BIGINT  NOT NULL,
    stays    BIGINT  NOT NULL,
    PRIMARY KEY (stage, stay_us)
);

-- Each stage's completed stays and their lower middle: median_us is the ((stays - 1) / 2)-th
-- shortest (from 0), `below` stays are shorter than it and `at_median` exactly as long.
CREATE TABLE funnel_stay_medians (
    stage      TEXT    PRIMARY KEY,
    stays      BIGINT  NOT NULL,
    median_us  BIGINT  NOT NULL,
    below      BIGINT  NOT NULL,
    at_median  BIGINT  NOT NULL
);

-- A database migrated with rows in the funnel's fact tables gets the counters those rows imply,
-- as a rebuild would write them.
INSERT INTO funnel_stage_counts (stage, leads)
SELECT stage, COUNT(*) FROM funnel_leads GROUP BY stage;

INSERT INTO funnel_reached_counts (group_kind, group_key, stage_rank, leads)
SELECT grouped.group_kind, grouped.group_key, ranks.stage_rank, COUNT(*)
FROM (
    SELECT 'all' AS group_kind, '' AS group_key, furthest_rank FROM funnel_leads
    UNION ALL SELECT 'capture_week', capture_week, furthest_rank FROM funnel_leads
    UNION ALL SELECT 'source', source, furthest_rank FROM funnel_leads
    UNION ALL SELECT 'partner', COALESCE(partner_id, '(none)'), furthest_rank FROM funnel_leads
) AS grouped
JOIN (
    SELECT 0 AS stage_rank UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3
    UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6
) AS ranks ON ranks.stage_rank = 0 OR ranks.stage_rank <= grouped.furthest_rank
GROUP BY grouped.group_kind, grouped.group_key, ranks.stage_rank;

INSERT INTO funnel_stay_lengths (stage, stay_us, stays)
SELECT stage, left_at_us - entered_at_us, COUNT(*) FROM funnel_stage_visits
WHERE left_at_us IS NOT NULL
GROUP BY stage, left_at_us - entered_at_us;

INSERT INTO funnel_stay_medians (stage, stays, median_us, below, at_median)
SELECT stage, total, stay_us, below, stays FROM (
    SELECT stage, stay_us, stays,
           CAST(SUM(stays) OVER (PARTITION BY stage ORDER BY stay_us) AS BIGINT) - stays AS below,
           CAST(SUM(stays) OVER (PARTITION BY stage) AS BIGINT) AS total
    FROM funnel_stay_lengths
) AS running
WHERE below <= (total - 1) / 2 AND (total - 1) / 2 < below + stays;
