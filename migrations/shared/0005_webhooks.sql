-- The webhook inbox: every delivery that passed its signature check, with its raw body, and
-- what we answered. Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.

CREATE TABLE webhook_inbox (
    inbox_id            TEXT    NOT NULL UNIQUE,
    provider            TEXT    NOT NULL,
    delivery_id         TEXT    NOT NULL,
    body_sha256         TEXT    NOT NULL,
    -- The body as received: UTF-8 text, or base64 when it was not valid UTF-8.
    raw_body            TEXT    NOT NULL,
    body_encoding       TEXT    NOT NULL,
    received_at_us      BIGINT  NOT NULL,
    -- accepted | acknowledged | rejected | parked | dead_lettered
    status              TEXT    NOT NULL,
    http_status         BIGINT  NOT NULL,
    response            TEXT    NOT NULL,
    attempts            BIGINT  NOT NULL,
    next_attempt_at_us  BIGINT,
    last_error          TEXT,
    updated_at_us       BIGINT  NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);
CREATE INDEX webhook_inbox_status ON webhook_inbox (status, next_attempt_at_us);

-- A delivery id seen again with a different body: flagged (409) and kept for review.
CREATE TABLE webhook_conflicts (
    provider            TEXT    NOT NULL,
    delivery_id         TEXT    NOT NULL,
    body_sha256         TEXT    NOT NULL,
    raw_body            TEXT    NOT NULL,
    body_encoding       TEXT    NOT NULL,
    received_at_us      BIGINT  NOT NULL,
    PRIMARY KEY (provider, delivery_id, body_sha256)
);
