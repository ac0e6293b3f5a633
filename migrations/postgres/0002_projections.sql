-- Projection checkpoints and the audit log. Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.

CREATE TABLE projection_checkpoints (
    name            TEXT    PRIMARY KEY,
    transaction_id  BIGINT  NOT NULL,
    position        BIGINT  NOT NULL,
    events_applied  BIGINT  NOT NULL,
    updated_at_us   BIGINT  NOT NULL
);

-- One row per event, in the order the audit projection saw it (seq), with the running global
-- hash after it: running_hash(seq) = SHA-256(running_hash(seq - 1) || position || event hash).
CREATE TABLE audit_log (
    seq             BIGINT  PRIMARY KEY,
    position        BIGINT  NOT NULL UNIQUE,
    transaction_id  BIGINT  NOT NULL,
    event_id        TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    stream_type     TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    actor           TEXT,
    command_id      TEXT,
    correlation_id  TEXT,
    causation_id    TEXT,
    request_id      TEXT,
    delivery_id     TEXT,
    source          TEXT,
    recorded_at_us  BIGINT  NOT NULL,
    event_hash      TEXT    NOT NULL,
    running_hash    TEXT    NOT NULL
);
CREATE INDEX audit_log_stream ON audit_log (stream_id, version);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_type ON audit_log (event_type, seq);
CREATE INDEX audit_log_time ON audit_log (recorded_at_us);

-- Periodic seals of the running hash: evidence, never rebuilt, never changed.
CREATE TABLE audit_seals (
    seq             BIGINT  PRIMARY KEY,
    transaction_id  BIGINT  NOT NULL,
    position        BIGINT  NOT NULL,
    running_hash    TEXT    NOT NULL,
    sealed_at_us    BIGINT  NOT NULL
);

CREATE TRIGGER audit_seals_append_only
    BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION revledger_reject_change();
