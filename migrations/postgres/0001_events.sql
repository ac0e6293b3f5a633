-- The append-only event store. Never edit this file after it ships: add a new migration.

CREATE TABLE events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Readers of the global log order by (transaction_id, position) and read only below the
    -- oldest running transaction, so a lower position committed late is never skipped.
    transaction_id  XID8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_type     TEXT        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL CHECK (schema_version >= 1),
    payload         JSONB       NOT NULL,
    metadata        JSONB       NOT NULL,
    command_id      UUID,
    recorded_at     TIMESTAMPTZ NOT NULL,
    prev_hash       BYTEA       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash            BYTEA       NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, version)
);

CREATE INDEX events_global_order ON events (transaction_id, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- One row per command that appended events: a command id seen again returns these positions.
CREATE TABLE commands (
    command_id      UUID        PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    first_version   BIGINT      NOT NULL,
    last_version    BIGINT      NOT NULL,
    first_position  BIGINT      NOT NULL,
    last_position   BIGINT      NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION revledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'revledger: % is append-only; % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION revledger_reject_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION revledger_reject_change();
CREATE TRIGGER commands_append_only
    BEFORE UPDATE OR DELETE ON commands
    FOR EACH ROW EXECUTE FUNCTION revledger_reject_change();
CREATE TRIGGER commands_no_truncate
    BEFORE TRUNCATE ON commands
    FOR EACH STATEMENT EXECUTE FUNCTION revledger_reject_change();
