-- Snapshots of read models for as-of reads (issue 24). Portable SQL: the same text on both
-- engines. Never edit after it ships: add a new migration.
--
-- A snapshot of read model `name` at checkpoint (`transaction_id`, `position`) holds the
-- model's rows after folding exactly the committed events at or before that checkpoint in
-- commit order (`projections::snapshots`). Snapshots are derived data: a rebuild of the model
-- deletes them, and one that fails its hash is skipped for the one before.
CREATE TABLE read_model_snapshots (
    name                TEXT    NOT NULL,
    transaction_id      BIGINT  NOT NULL,
    position            BIGINT  NOT NULL,
    -- The highest position and latest recording time among the events it holds: an as-of
    -- read at position P (time T) may start from it only when this is at or before P (T).
    max_position        BIGINT  NOT NULL,
    max_recorded_at_us  BIGINT  NOT NULL,
    events_applied      BIGINT  NOT NULL,
    recorded_at_us      BIGINT  NOT NULL,
    -- The rows, encoded (`projections::snapshots::codec`) and in base64, and the SHA-256 of the
    -- encoded bytes in hex, checked before the body is used.
    body                TEXT    NOT NULL,
    sha256              TEXT    NOT NULL,
    PRIMARY KEY (name, transaction_id, position)
);
CREATE INDEX read_model_snapshots_max_position ON read_model_snapshots (name, max_position);
CREATE INDEX read_model_snapshots_max_recorded_at ON read_model_snapshots (name, max_recorded_at_us);
