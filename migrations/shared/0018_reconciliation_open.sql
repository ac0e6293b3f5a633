-- Reconciliation's open mismatch set, kept as the events arrive (issue 27), and its counts.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

-- Exactly what the pure rules find over every fact (projections::reconciliation::find_mismatches),
-- one row per mismatch, under the invoice, payment, commission or payout whose rule found it.
CREATE TABLE reconciliation_mismatches (
    -- invoice | payment | commission | payout
    owner_kind          TEXT    NOT NULL,
    owner_id            TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    -- the report's order (kind, then streams, then owner), hex-encoded so that both engines
    -- compare it byte by byte whatever the database's collation; also the page cursor
    order_key           TEXT    NOT NULL,
    -- the streams involved, sorted, as a JSON array
    streams             TEXT    NOT NULL,
    detail              TEXT    NOT NULL,
    expected_halalas    BIGINT,
    actual_halalas      BIGINT,
    PRIMARY KEY (owner_kind, owner_id, kind)
);
CREATE UNIQUE INDEX reconciliation_mismatches_order ON reconciliation_mismatches (order_key);

-- Maintained counts: scope `checked` (names invoices, payments, commissions: facts compared),
-- and per source (`ledger`, `moyasar`) the open mismatches of each kind. A count at zero has
-- no row.
CREATE TABLE reconciliation_counts (
    scope   TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    tally   BIGINT  NOT NULL,
    PRIMARY KEY (scope, name)
);

-- The lookups a batch makes to find whose mismatches it may have changed. Unique (each holds
-- its table's key) so that a rebuild keeps them: it drops only secondary indexes that reads
-- alone need (projections::deferred_indexes), and a batch must never scan. They replace the
-- plain indexes on the same leading columns.
DROP INDEX IF EXISTS reconciliation_invoice_payments_payment;
DROP INDEX IF EXISTS reconciliation_commissions_invoice;
DROP INDEX IF EXISTS reconciliation_commissions_payout;
DROP INDEX IF EXISTS reconciliation_invoices_moyasar;
DELETE FROM deferred_indexes WHERE name IN ('reconciliation_invoice_payments_payment',
    'reconciliation_commissions_invoice', 'reconciliation_commissions_payout',
    'reconciliation_invoices_moyasar');
CREATE UNIQUE INDEX reconciliation_invoice_payments_by_payment
    ON reconciliation_invoice_payments (payment_id, invoice_id);
CREATE UNIQUE INDEX reconciliation_commissions_by_invoice
    ON reconciliation_commissions (invoice_id, commission_id);
CREATE UNIQUE INDEX reconciliation_commissions_by_payout
    ON reconciliation_commissions (payout_id, commission_id);
CREATE UNIQUE INDEX reconciliation_invoices_by_moyasar
    ON reconciliation_invoices (moyasar_invoice_id, invoice_id);
CREATE UNIQUE INDEX reconciliation_invoices_by_due
    ON reconciliation_invoices (due_at_us, invoice_id);
CREATE UNIQUE INDEX reconciliation_payments_by_invoice
    ON reconciliation_payments (invoice_id, payment_id);
CREATE UNIQUE INDEX reconciliation_payments_by_moyasar
    ON reconciliation_payments (moyasar_invoice_id, payment_id);

-- The report lists the providers' findings newest day first, a page at a time.
CREATE INDEX provider_reconciliation_findings_listed
    ON provider_reconciliation_findings (day DESC, provider, kind, payment_id);

-- The new tables derive from the whole log: the read model is folded again from its start.
DELETE FROM reconciliation_invoices;
DELETE FROM reconciliation_invoice_payments;
DELETE FROM reconciliation_payments;
DELETE FROM reconciliation_commissions;
DELETE FROM reconciliation_clock;
DELETE FROM provider_payments;
DELETE FROM provider_reconciliation_runs;
DELETE FROM provider_reconciliation_findings;
DELETE FROM quarantined_events WHERE projection = 'reconciliation';
DELETE FROM projection_checkpoints WHERE name = 'reconciliation';
