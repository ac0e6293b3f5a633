-- Finance read models: the double-entry journal and reconciliation.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

-- One balanced journal entry per money movement; entry_id is '<event_id>/<entry_index>'.
CREATE TABLE ledger_entries (
    entry_id        TEXT    PRIMARY KEY,
    position        BIGINT  NOT NULL,
    entry_index     BIGINT  NOT NULL,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    stream_id       TEXT    NOT NULL,
    -- when the movement happened (the event's business time), Unix microseconds
    occurred_at_us  BIGINT  NOT NULL,
    description     TEXT    NOT NULL
);
CREATE INDEX ledger_entries_position ON ledger_entries (position, entry_index);

-- The lines of each entry: exactly one of debit and credit is positive, the other zero.
CREATE TABLE ledger_lines (
    entry_id        TEXT    NOT NULL,
    line_no         BIGINT  NOT NULL,
    account         TEXT    NOT NULL,
    debit_halalas   BIGINT  NOT NULL,
    credit_halalas  BIGINT  NOT NULL,
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX ledger_lines_account ON ledger_lines (account, entry_id, line_no);

-- What the journal remembers of an issued invoice: who owes it and how it was posted, so a
-- payment can be applied to the right receivable and a cancellation can reverse the issue.
CREATE TABLE ledger_invoices (
    invoice_id      TEXT    PRIMARY KEY,
    lead_id         TEXT    NOT NULL,
    vat_halalas     BIGINT  NOT NULL,
    total_halalas   BIGINT  NOT NULL
);

CREATE TABLE ledger_invoice_revenue (
    invoice_id      TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    net_halalas     BIGINT  NOT NULL,
    PRIMARY KEY (invoice_id, account)
);

-- Payments whose collection was posted, with the amount and fee posted so far.
CREATE TABLE ledger_payments (
    payment_id          TEXT    PRIMARY KEY,
    collected_halalas   BIGINT  NOT NULL,
    fee_halalas         BIGINT  NOT NULL
);

-- Reconciliation facts: invoices, payments and commissions as their own streams tell them.
CREATE TABLE reconciliation_invoices (
    invoice_id              TEXT    PRIMARY KEY,
    stream_id               TEXT    NOT NULL,
    lead_id                 TEXT    NOT NULL,
    moyasar_invoice_id      TEXT,
    subtotal_halalas        BIGINT  NOT NULL,
    total_halalas           BIGINT  NOT NULL,
    due_at_us               BIGINT  NOT NULL,
    -- issued | partially_paid | paid | canceled | expired
    status                  TEXT    NOT NULL,
    paid_halalas            BIGINT  NOT NULL,
    refunded_halalas        BIGINT  NOT NULL,
    -- the net (before VAT) part of the refunds, from the credit notes
    refunded_base_halalas   BIGINT  NOT NULL,
    refunds                 BIGINT  NOT NULL
);

-- Payments recorded against an invoice (PaymentRecorded), by the payment id they name.
CREATE TABLE reconciliation_invoice_payments (
    invoice_id      TEXT    NOT NULL,
    payment_id      TEXT    NOT NULL,
    amount_halalas  BIGINT  NOT NULL,
    PRIMARY KEY (invoice_id, payment_id)
);
CREATE INDEX reconciliation_invoice_payments_payment ON reconciliation_invoice_payments (payment_id);

CREATE TABLE reconciliation_payments (
    payment_id          TEXT    PRIMARY KEY,
    stream_id           TEXT    NOT NULL,
    invoice_id          TEXT,
    moyasar_invoice_id  TEXT,
    -- the latest Moyasar status recorded
    status              TEXT    NOT NULL,
    amount_halalas      BIGINT  NOT NULL,
    -- whether the gateway took the money (captured, paid or refunded)
    collected           BOOLEAN NOT NULL,
    refunded_halalas    BIGINT  NOT NULL
);

CREATE TABLE reconciliation_commissions (
    commission_id           TEXT    PRIMARY KEY,
    stream_id               TEXT    NOT NULL,
    partner_id              TEXT    NOT NULL,
    invoice_id              TEXT    NOT NULL,
    -- held | approved | rejected | paid_out
    status                  TEXT    NOT NULL,
    accrued_halalas         BIGINT  NOT NULL,
    -- sum of clawbacks, zero or negative
    clawed_back_halalas     BIGINT  NOT NULL,
    adjusted_halalas        BIGINT  NOT NULL,
    payout_id               TEXT,
    paid_out_halalas        BIGINT  NOT NULL,
    -- accrued + clawed back + adjusted when it was paid out
    net_at_payout_halalas   BIGINT
);
CREATE INDEX reconciliation_commissions_invoice ON reconciliation_commissions (invoice_id);
CREATE INDEX reconciliation_commissions_payout ON reconciliation_commissions (payout_id);

-- The latest business time seen in a money event: "past due" is judged against the log's own
-- clock, never the wall clock, so a report is the same whenever it is computed.
CREATE TABLE reconciliation_clock (
    name    TEXT    PRIMARY KEY,
    at_us   BIGINT  NOT NULL
);
