-- Secondary indexes a rebuild dropped at its start, to create again from their definitions
-- at its end: a read model's tables fill far faster without them, and one sorted build of
-- each index costs less than a million single-row inserts into it. A row here outlives a
-- rebuild that stopped half way; the read models' worker creates its index when it starts.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE TABLE deferred_indexes (
    name        TEXT    PRIMARY KEY,
    table_name  TEXT    NOT NULL,
    definition  TEXT    NOT NULL
);
