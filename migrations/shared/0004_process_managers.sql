-- Process-manager state. Portable SQL: the same text on both engines.
-- Never edit after it ships: add a new migration.

-- Commands a process manager issued that the domain refused: kept for finance to look at.
CREATE TABLE process_rejections (
    process         TEXT    NOT NULL,
    command_id      TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    event_type      TEXT    NOT NULL,
    target_stream   TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    recorded_at_us  BIGINT  NOT NULL,
    PRIMARY KEY (process, command_id)
);

-- Invoices the payment process manager has seen issued, and Moyasar's ids for them.
CREATE TABLE pm_invoices (
    invoice_id          TEXT    PRIMARY KEY,
    moyasar_invoice_id  TEXT,
    seller_vat_number   TEXT    NOT NULL
);
CREATE INDEX pm_invoices_moyasar ON pm_invoices (moyasar_invoice_id);

-- Payments and refunds that arrived before their invoice: applied when it is issued.
CREATE TABLE pm_parked_payments (
    invoice_key         TEXT    NOT NULL,
    payment_event_id    TEXT    NOT NULL,
    -- payment | refund
    kind                TEXT    NOT NULL,
    payment_id          TEXT    NOT NULL,
    amount_halalas      BIGINT  NOT NULL,
    -- for a refund: the payment's cumulative refunded amount, which names the refund
    cumulative_halalas  BIGINT  NOT NULL,
    at_us               BIGINT  NOT NULL,
    position            BIGINT  NOT NULL,
    PRIMARY KEY (invoice_key, payment_event_id)
);
