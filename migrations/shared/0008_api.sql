-- API tokens (stored hashed) and idempotency keys. Portable SQL: the same text on both
-- engines. Never edit after it ships: add a new migration.

CREATE TABLE api_tokens (
    token_id        TEXT    PRIMARY KEY,
    -- SHA-256 of the token, hex: the token itself is shown once and never stored
    token_sha256    TEXT    NOT NULL UNIQUE,
    -- admin | sales | finance | auditor | partner
    role            TEXT    NOT NULL,
    partner_id      TEXT,
    label           TEXT,
    created_at_us   BIGINT  NOT NULL,
    revoked_at_us   BIGINT
);

CREATE TABLE idempotency_keys (
    principal       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request         TEXT    NOT NULL,
    body_sha256     TEXT    NOT NULL,
    status          BIGINT  NOT NULL,
    response        TEXT    NOT NULL,
    created_at_us   BIGINT  NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at_us);
