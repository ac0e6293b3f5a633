-- The append-only event store. Never edit this file after it ships: add a new migration.
-- SQLite has one writer at a time (BEGIN IMMEDIATE), so position order is commit order.

CREATE TABLE events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB    NOT NULL UNIQUE,
    stream_id       TEXT    NOT NULL,
    stream_type     TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    command_id      BLOB,
    -- Unix time in microseconds (UTC): the precision both engines keep.
    recorded_at_us  INTEGER NOT NULL,
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, version)
);

CREATE INDEX events_recorded_at ON events (recorded_at_us);

CREATE TABLE commands (
    command_id      BLOB    PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    first_version   INTEGER NOT NULL,
    last_version    INTEGER NOT NULL,
    first_position  INTEGER NOT NULL,
    last_position   INTEGER NOT NULL,
    recorded_at_us  INTEGER NOT NULL
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'revledger: events is append-only; UPDATE is not allowed'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'revledger: events is append-only; DELETE is not allowed'); END;
CREATE TRIGGER commands_no_update BEFORE UPDATE ON commands
BEGIN SELECT RAISE(ABORT, 'revledger: commands is append-only; UPDATE is not allowed'); END;
CREATE TRIGGER commands_no_delete BEFORE DELETE ON commands
BEGIN SELECT RAISE(ABORT, 'revledger: commands is append-only; DELETE is not allowed'); END;
