-- Personal data sealed per subject (issue 25). Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.
--
-- The events hold personal fields as envelopes sealed with their subject's data key
-- (`adapters::personal`); these tables are the key store. Erasing a subject deletes its key and
-- its email index rows, which makes every envelope of it unreadable in the log, the read
-- models, their as-of copies and every backup, while every hash chain stays valid.

-- One data key per subject (`lead-<id>`, `partner-<id>`, `email-<keyed hash>`): base64 of the
-- 32-byte key, or, when `wrapped`, of the key sealed with the master key (nonce, ciphertext, tag).
CREATE TABLE personal_keys (
    subject         TEXT    PRIMARY KEY,
    data_key        TEXT    NOT NULL,
    wrapped         BOOLEAN NOT NULL,
    created_at_us   BIGINT  NOT NULL
);

-- Who an email belongs to, by the email's keyed hash (HMAC-SHA-256 under the index secret
-- below): the email itself is never stored. Deleted with the subject's key.
CREATE TABLE personal_emails (
    email_index     TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    PRIMARY KEY (email_index, subject)
);
CREATE INDEX personal_emails_subject ON personal_emails (subject);

-- The secret of the email index (one row), base64, wrapped like a data key when a master key
-- is configured.
CREATE TABLE personal_index_secret (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    secret          TEXT    NOT NULL,
    wrapped         BOOLEAN NOT NULL
);

-- Subjects erased: no key is made for them again. The erasure log kept outside the database
-- (`REVLEDGER_ERASURE_LOG`) holds the same list, so a restored backup is erased again.
CREATE TABLE personal_erasures (
    subject         TEXT    PRIMARY KEY,
    erased_at_us    BIGINT  NOT NULL
);
