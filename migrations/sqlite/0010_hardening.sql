-- Hardening (issue 20). Portable SQL: the same text on both engines. Never edit after it
-- ships: add a new migration.

-- Events a money read model did not fold because an amount in them is beyond the ceiling
-- every amount must stay within (domain::money::MAX_AMOUNT_HALALAS). Derived state, written
-- with the read model's batch and emptied with it by a rebuild; listed by GET /api/projections.
CREATE TABLE quarantined_events (
    projection      TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    event_id        TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    PRIMARY KEY (projection, position)
);
