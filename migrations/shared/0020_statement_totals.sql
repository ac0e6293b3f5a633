-- Partner statements' totals kept as lines are written (issue 27): each partner's balance,
-- each partner's month (its lines and net), each payout's commissions and net; and indexes
-- that give the commissions lists their first page without sorting every commission. Filled
-- here from the rows already written, so a migrated store reads the same without a rebuild.
-- Portable SQL: the same text on both engines. Never edit after it ships: add a new migration.

CREATE TABLE partner_balances (
    partner_id      TEXT    PRIMARY KEY,
    lines           BIGINT  NOT NULL,
    balance_halalas BIGINT  NOT NULL
);

CREATE TABLE statement_months (
    partner_id  TEXT    NOT NULL,
    month       TEXT    NOT NULL,
    lines       BIGINT  NOT NULL,
    halalas     BIGINT  NOT NULL,
    PRIMARY KEY (partner_id, month)
);

CREATE TABLE payout_totals (
    payout_id       TEXT    NOT NULL,
    partner_id      TEXT    NOT NULL,
    commissions     BIGINT  NOT NULL,
    net_halalas     BIGINT  NOT NULL,
    PRIMARY KEY (payout_id, partner_id)
);

INSERT INTO partner_balances (partner_id, lines, balance_halalas)
SELECT partner_id, COUNT(*), CAST(SUM(amount_halalas) AS BIGINT) FROM statement_lines GROUP BY partner_id;

INSERT INTO statement_months (partner_id, month, lines, halalas)
SELECT partner_id, month, COUNT(*), CAST(SUM(amount_halalas) AS BIGINT) FROM statement_lines
GROUP BY partner_id, month;

INSERT INTO payout_totals (payout_id, partner_id, commissions, net_halalas)
SELECT payout_id, partner_id, COUNT(*), CAST(SUM(net_halalas) AS BIGINT) FROM partner_commissions
WHERE payout_id IS NOT NULL GROUP BY payout_id, partner_id;

-- The commissions list in accrual order (`projections::commissions::list`).
CREATE INDEX statement_lines_accrual_order ON statement_lines (kind, occurred_at_us, commission_id);
-- Commissions held until latest first, all and per partner (`statements::commissions_standing`).
CREATE INDEX partner_commissions_held ON partner_commissions (held_until_us DESC, commission_id);
CREATE INDEX partner_commissions_partner_held ON partner_commissions (partner_id, held_until_us DESC, commission_id);
