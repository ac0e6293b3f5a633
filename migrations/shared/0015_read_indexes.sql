-- Indexes for reads that arrived after their tables: a Moyasar payment's webhook finds its
-- invoice by the Moyasar invoice id revledger created for it, and the commissions list joins
-- each commission to its accrual line. Without them both scan their table on every request.
-- Secondary indexes, so a rebuild defers them (projections::deferred_indexes).
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE INDEX reconciliation_invoices_moyasar ON reconciliation_invoices (moyasar_invoice_id);
CREATE INDEX statement_lines_commission ON statement_lines (commission_id, kind);
