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

-- Idempotency-Key claims (adapters::idempotency): a key is claimed before its command runs,
-- with the command id minted for it; the answer is stored once it is final. Keys answered
-- before this migration keep their answers.
CREATE TABLE idempotency_requests (
    principal       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request         TEXT    NOT NULL,
    body_sha256     TEXT    NOT NULL,
    command_id      TEXT,
    -- in_progress | done
    state           TEXT    NOT NULL,
    status          BIGINT,
    response        TEXT,
    claimed_at_us   BIGINT  NOT NULL,
    created_at_us   BIGINT  NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX idempotency_requests_created ON idempotency_requests (created_at_us);
INSERT INTO idempotency_requests (principal, idempotency_key, request, body_sha256, command_id,
    state, status, response, claimed_at_us, created_at_us)
SELECT principal, idempotency_key, request, body_sha256, NULL, 'done', status, response,
    created_at_us, created_at_us
FROM idempotency_keys;
DROP TABLE idempotency_keys;

-- Tokens expire and are revoked (api::auth): an expired or revoked token is refused like an
-- unknown one. NULL: no expiry.
ALTER TABLE api_tokens ADD COLUMN expires_at_us BIGINT;

-- Dashboard sessions (api::sessions): the cookie holds an opaque random id, stored here only
-- as its SHA-256, never the token. A session ends at sign-out (its row is deleted), when it
-- expires, and when its token is revoked or expires. `token_id` is `bootstrap-admin` for the
-- configured admin token, which has no row in api_tokens: such a session also holds
-- `admin_binding_sha256`, the SHA-256 of the session id and that token together, so it ends
-- when REVLEDGER_ADMIN_TOKEN changes, without the table holding anything a guess at the admin
-- token could be checked against.
CREATE TABLE dashboard_sessions (
    session_sha256          TEXT    PRIMARY KEY,
    token_id                TEXT    NOT NULL,
    -- admin | sales | finance | auditor | partner
    role                    TEXT    NOT NULL,
    partner_id              TEXT,
    created_at_us           BIGINT  NOT NULL,
    expires_at_us           BIGINT  NOT NULL,
    admin_binding_sha256    TEXT
);
CREATE INDEX dashboard_sessions_token ON dashboard_sessions (token_id);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at_us);
