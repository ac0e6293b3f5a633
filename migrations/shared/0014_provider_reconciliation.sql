-- Reconciliation against Moyasar and the missed-payment sweep. Portable SQL: the same text on
-- both engines. Never edit after it ships: add a new migration.

-- Each Moyasar payment as the ledger recorded it (its latest report), and when it was first
-- reported: the reconciliation of a Riyadh day compares Moyasar's payments of that day with
-- these. Part of the `reconciliation` read model.
CREATE TABLE provider_payments (
    payment_id              TEXT    PRIMARY KEY,
    invoice_id              TEXT,
    moyasar_invoice_id      TEXT,
    status                  TEXT    NOT NULL,
    amount_halalas          BIGINT  NOT NULL,
    fee_halalas             BIGINT  NOT NULL,
    refunded_halalas        BIGINT  NOT NULL,
    first_reported_at_us    BIGINT  NOT NULL
);
CREATE INDEX provider_payments_first_reported ON provider_payments (first_reported_at_us);
CREATE INDEX provider_payments_moyasar_invoice ON provider_payments (moyasar_invoice_id);

-- The latest recorded run of each provider's day (ReconciliationRecorded).
CREATE TABLE provider_reconciliation_runs (
    provider                TEXT    NOT NULL,
    day                     TEXT    NOT NULL,
    run                     BIGINT  NOT NULL,
    recorded_at_us          BIGINT  NOT NULL,
    provider_payments       BIGINT  NOT NULL,
    ledger_payments         BIGINT  NOT NULL,
    finding_count           BIGINT  NOT NULL,
    PRIMARY KEY (provider, day)
);

-- The findings of that latest run: replaced as a whole by each later run of the day.
CREATE TABLE provider_reconciliation_findings (
    provider                TEXT    NOT NULL,
    day                     TEXT    NOT NULL,
    kind                    TEXT    NOT NULL,
    payment_id              TEXT    NOT NULL,
    invoice_id              TEXT,
    ledger_value            TEXT,
    provider_value          TEXT,
    detail                  TEXT    NOT NULL,
    PRIMARY KEY (provider, day, kind, payment_id)
);

-- The missed-payment sweep's own state (derived, like the process managers' tables): when it
-- first saw each open invoice, and when it last asked Moyasar about it.
CREATE TABLE pm_moyasar_sweep (
    invoice_id              TEXT    PRIMARY KEY,
    first_seen_at_us        BIGINT  NOT NULL,
    last_checked_at_us      BIGINT
);
