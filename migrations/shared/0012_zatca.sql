-- ZATCA Phase 2 submissions (issue 22): one row per document on an EGS unit's chain, folded
-- from its submission's events (projections::zatca). The legal XML stays in the events.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE TABLE zatca_documents (
    document_id         TEXT    PRIMARY KEY,
    invoice_id          TEXT    NOT NULL,
    -- invoice | credit_note | debit_note
    kind                TEXT    NOT NULL,
    -- clearance | reporting
    flow                TEXT    NOT NULL,
    egs_unit            TEXT    NOT NULL,
    icv                 BIGINT  NOT NULL,
    uuid                TEXT    NOT NULL,
    invoice_hash        TEXT    NOT NULL,
    -- PIH: the hash of the document before it in the unit's chain
    previous_invoice_hash TEXT  NOT NULL,
    -- pending | cleared | reported | rejected
    status              TEXT    NOT NULL,
    issued_at_us        BIGINT  NOT NULL,
    signed_at_us        BIGINT,
    attempts            BIGINT  NOT NULL,
    next_attempt_at_us  BIGINT,
    last_reason         TEXT,
    -- ZATCA's messages of its final answer, JSON
    messages            TEXT    NOT NULL,
    final_at_us         BIGINT
);
CREATE INDEX zatca_documents_due ON zatca_documents (status, next_attempt_at_us);
CREATE INDEX zatca_documents_invoice ON zatca_documents (invoice_id);
